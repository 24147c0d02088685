/**
 * A URL's user info, query string and fragment, wherever a URL appears in `text`: a presigned
 * model URL carries its signature in the query (`X-Goog-Signature=…`, `sig=…`), a URL may carry a
 * password before `@`. Backslashes and quotes end the match, so a JSON line stays valid JSON.
 */
const URL_SECRETS =
  /\b([a-z][a-z0-9+.-]*:\/\/)(?:[^\s/?#@"'<>\\]*@)?([^\s?#"'<>\\]*)(?:[?#][^\s"'<>\\]*)?/gi;

/**
 * `text` with every URL's user info, query string and fragment removed. Every message the service
 * writes (errors, logs, start-up failures) passes through here, so a secret in `MODEL_URI` never
 * leaves the process.
 */
export function withoutUrlSecrets(text: string): string {
  return text.replace(URL_SECRETS, "$1$2");
}
