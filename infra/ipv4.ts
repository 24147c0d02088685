/**
 * IPv4 addresses, CIDR blocks and address ranges: the one reading of them that the config, the
 * Kind target, MetalLB and the network policies share, so a value the config accepts cannot fail
 * later in the middle of `up`.
 */

/**
 * One decimal octet, without leading zeros: Go's net.ParseIP (which Kubernetes and MetalLB
 * parse with) rejects `018`, and other parsers read it as octal, so `172.018.0.1` is no address.
 */
const OCTET = /^(0|[1-9]\d{0,2})$/;

/** The address as a 32-bit number, or undefined when `text` is not a dotted IPv4 address. */
export function ipv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) {
    return undefined;
  }
  return parts.reduce((sum, p) => sum * 256 + Number(p), 0);
}

/** An address as dotted decimal. */
export function dotted(address: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(address / 2 ** shift) % 256).join(".");
}

/** An IPv4 CIDR block `a.b.c.d/n` as its first address and prefix; undefined when it is not one. */
export function ipv4Cidr(text: string): { base: number; prefix: number } | undefined {
  const match = /^([^/]+)\/(\d{1,2})$/.exec(text);
  const address = match ? ipv4(match[1]) : undefined;
  const prefix = Number(match?.[2]);
  if (address === undefined || prefix > 32) {
    return undefined;
  }
  const size = 2 ** (32 - prefix);
  return { base: address - (address % size), prefix };
}

/** Whether the IPv4 `address` lies in `cidr` (a valid block). */
export function cidrContains(cidr: string, address: number): boolean {
  const block = ipv4Cidr(cidr);
  return block !== undefined && address - (address % 2 ** (32 - block.prefix)) === block.base;
}

/**
 * Why `text` is not an address range MetalLB accepts in an IPAddressPool (IPv4 `first-last`
 * with first <= last, or an IPv4 CIDR), as the end of a sentence; undefined when it is one.
 */
export function addressRangeProblem(text: string): string | undefined {
  if (text.includes("/")) {
    return ipv4Cidr(text) === undefined ? "is not a valid IPv4 CIDR" : undefined;
  }
  const [first, last, ...rest] = text.split("-");
  const from = ipv4(first ?? "");
  const to = ipv4(last ?? "");
  if (rest.length > 0 || from === undefined || to === undefined) {
    return "is neither first-last nor a CIDR";
  }
  return from > to ? "starts after it ends" : undefined;
}
