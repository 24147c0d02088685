/** IPv4 addresses and CIDR blocks, as the config and the network policies read them. */

/** The address as a 32-bit number, or undefined when `text` is not a dotted IPv4 address. */
export function ipv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) {
    return undefined;
  }
  return parts.reduce((sum, p) => sum * 256 + Number(p), 0);
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
