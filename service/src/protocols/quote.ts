/**
 * How error messages show what a client sent: a short, bounded prefix, so a 3 MB string or an array
 * nested thousands deep is named in a few words instead of being echoed back (or overflowing the
 * stack while it is printed).
 */

/** Longest prefix of client text quoted in a message. */
const QUOTED_CHARS = 40;

/** `"text"`, cut to its first characters with `…` when longer. */
export function quote(text: string): string {
  const shown = text.length > QUOTED_CHARS ? `${text.slice(0, QUOTED_CHARS)}…` : text;
  return JSON.stringify(shown);
}

/** `"a", "b", "c"`, each quoted; lists longer than a few names end in `…`. */
export function quoteAll(names: readonly string[], max = 20): string {
  const shown = names.slice(0, max).map(quote).join(", ");
  return names.length > max ? `${shown}, … (${names.length} in all)` : shown;
}

/** Names any JSON value in a few words: `the string "abc"`, `null`, `an array`, `1.5`. */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `the string ${quote(value)}`;
  if (typeof value === "object") return "an object";
  if (value === undefined) return "nothing";
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") {
    return String(value);
  }
  return "not a JSON value";
}
