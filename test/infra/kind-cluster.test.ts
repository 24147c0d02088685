import { imagePlatform, loadBalancerRange } from "../../infra/cluster/kind";

describe("loadBalancerRange", () => {
  it.each([
    [["172.18.0.0/16"], "172.18.255.200-172.18.255.250"],
    [["fc00:f853:ccd:e793::/64", "172.19.0.0/16"], "172.19.255.200-172.19.255.250"],
    [["192.168.100.0/24"], "192.168.100.200-192.168.100.250"],
    [["10.0.0.0/8"], "10.255.255.200-10.255.255.250"],
  ])("%j → %s", (subnets, range) => {
    expect(loadBalancerRange(subnets)).toBe(range);
  });

  it("rejects a network without an IPv4 subnet, naming the config key that overrides it", () => {
    expect(() => loadBalancerRange(["fc00:f853:ccd:e793::/64"])).toThrow(
      'the "kind" Docker network has no IPv4 subnet (found [fc00:f853:ccd:e793::/64]); ' +
        "set a MetalLB range with: pulumi config set metallbAddressRange <first>-<last>",
    );
  });

  it("rejects a subnet too small to spare 51 addresses", () => {
    expect(() => loadBalancerRange(["172.18.0.0/28"])).toThrow(
      'the "kind" Docker network\'s subnet 172.18.0.0/28 is not an IPv4 network of /8 to /24; ' +
        "set a MetalLB range with: pulumi config set metallbAddressRange <first>-<last>",
    );
  });
});

describe("imagePlatform", () => {
  it("refuses nodes of an architecture the image cannot be built for", () => {
    // Checked where the program reads the node, inside an apply; the harness cannot survive a
    // rejected resource input, so the function is tested directly.
    expect(imagePlatform("arm64")).toBe("linux/arm64");
    expect(() => imagePlatform("s390x")).toThrow(
      'the Kind nodes run on "s390x"; the service\'s image builds for amd64 and arm64 only',
    );
    expect(() => imagePlatform(undefined)).toThrow(
      'the Kind nodes run on "an unknown architecture"',
    );
  });
});
