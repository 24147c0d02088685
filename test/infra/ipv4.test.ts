import { checkAddressRange } from "../../infra/platform/metallb";
import { loadBalancerRange } from "../../infra/cluster/kind";
import { ConfigError, parseConfig } from "../../infra/config";
import { addressRangeProblem, ipv4, ipv4Cidr } from "../../infra/ipv4";
import { readStackConfig } from "./harness/stack-config";

const dev = readStackConfig("dev");

/** The problems parseConfig reports for the dev stack with `change`; empty when it accepts it. */
function problems(change: Record<string, string>): readonly string[] {
  try {
    parseConfig({ ...dev, ...change });
    return [];
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
}

describe("ipv4", () => {
  it.each([
    ["0.0.0.0", 0],
    ["10.0.0.1", 10 * 2 ** 24 + 1],
    ["255.255.255.255", 2 ** 32 - 1],
  ])("reads %s", (text, value) => {
    expect(ipv4(text)).toBe(value);
  });

  // A leading zero is octal to some parsers and an error to Go's net.ParseIP, which Kubernetes
  // and MetalLB use: no reading of it is safe.
  it.each([
    "172.018.0.1",
    "010.0.0.1",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "1.2.3.-4",
    "a.b.c.d",
    "",
  ])("rejects %j", (text) => {
    expect(ipv4(text)).toBeUndefined();
  });

  it("masks a CIDR to its first address", () => {
    expect(ipv4Cidr("172.18.7.9/16")).toEqual({ base: ipv4("172.18.0.0"), prefix: 16 });
    expect(ipv4Cidr("172.18.0.0/33")).toBeUndefined();
    expect(ipv4Cidr("172.018.0.0/16")).toBeUndefined();
  });
});

describe("addressRangeProblem", () => {
  it.each([
    ["172.18.255.200-172.18.255.250", undefined],
    ["10.0.0.1-10.0.0.1", undefined],
    ["192.168.10.0/24", undefined],
    ["172.18.255.250-172.18.255.200", "starts after it ends"],
    ["172.18.255.200", "is neither first-last nor a CIDR"],
    ["172.18.256.1-172.18.256.9", "is neither first-last nor a CIDR"],
    ["fc00::1-fc00::9", "is neither first-last nor a CIDR"],
    ["10.0.0.1-10.0.0.2-10.0.0.3", "is neither first-last nor a CIDR"],
    ["172.018.0.1-172.018.0.9", "is neither first-last nor a CIDR"],
    ["10.0.0.0/33", "is not a valid IPv4 CIDR"],
  ])("%s → %s", (range, problem) => {
    expect(addressRangeProblem(range)).toBe(problem);
  });
});

/**
 * The config, MetalLB and the Kind target read addresses with one parser, so a value the config
 * accepts cannot fail later in the middle of `up`. Before, the config took 172.018.0.1 and
 * MetalLB refused it.
 */
describe("172.018.0.1, an address with a leading zero", () => {
  it("is refused by the config as a MetalLB range and as a load balancer source", () => {
    expect(problems({ "mlscore:metallbAddressRange": "172.018.0.1-172.018.0.9" })).toEqual([
      "mlscore:metallbAddressRange must be empty (derived from the kind Docker network), an IPv4 " +
        'range first-last or an IPv4 CIDR (got "172.018.0.1-172.018.0.9"); ' +
        "set it with: pulumi config set metallbAddressRange 172.18.255.200-172.18.255.250",
    ]);
    expect(problems({ "mlscore:loadBalancerSourceRanges": "172.018.0.0/16" })).toEqual([
      "mlscore:loadBalancerSourceRanges must be empty (any source) or IPv4 CIDRs separated by " +
        'commas, such as 203.0.113.0/24,198.51.100.7/32 (got "172.018.0.0/16"); ' +
        "set it with: pulumi config set loadBalancerSourceRanges 203.0.113.0/24",
    ]);
  });

  it("is refused by MetalLB's component as the config refused it", () => {
    expect(() => checkAddressRange("172.018.0.1-172.018.0.9")).toThrow(
      'MetalLB address range "172.018.0.1-172.018.0.9" is neither first-last nor a CIDR',
    );
    expect(() => checkAddressRange("172.018.0.0/16")).toThrow(
      'MetalLB address range "172.018.0.0/16" is not a valid IPv4 CIDR',
    );
  });

  it("is no IPv4 subnet to the Kind target deriving MetalLB's range", () => {
    expect(() => loadBalancerRange(["172.018.0.0/16"])).toThrow(
      'the "kind" Docker network has no IPv4 subnet (found [172.018.0.0/16])',
    );
  });

  it("is accepted everywhere once written without the zero", () => {
    expect(problems({ "mlscore:metallbAddressRange": "172.18.0.1-172.18.0.9" })).toEqual([]);
    expect(checkAddressRange("172.18.0.1-172.18.0.9")).toBe("172.18.0.1-172.18.0.9");
    expect(loadBalancerRange(["172.18.0.0/16"])).toBe("172.18.255.200-172.18.255.250");
  });
});
