import type { Request } from "express";
import { z } from "zod";
import { hasBody, JSON_TYPE } from "../http/body";
import { ApiError, badRequest } from "../http/errors";

/**
 * Reading a request body against a zod schema. The OpenAPI document publishes the same schemas
 * (`openapi.ts`), so the documented request can never drift from the validated one.
 */

/** The request's Content-Type as messages show it: a short prefix, since clients choose it. */
function contentType(req: Request): string {
  const given = req.headers["content-type"];
  if (given === undefined) return "none";
  return given.length > 60 ? `${given.slice(0, 60)}…` : given;
}

/**
 * Fails when the body reader left the route no body: 400 for a missing body, 415 for a type it
 * does not read. The reader hands CSV over as text on every route that takes a body, so a CSV
 * body is refused here unless `accepted` lists its type.
 */
export function requireParsedBody(req: Request, accepted: readonly string[] = [JSON_TYPE]): void {
  const expected = accepted.join(" or ");
  if (req.body === undefined) {
    if (!hasBody(req)) throw badRequest(`the request has no body; send ${expected}`);
    throw new ApiError(
      415,
      `Content-Type ${contentType(req)} is not supported here; send ${expected}`,
    );
  }
  if (typeof req.body === "string" && !accepted.some((type) => req.is(type))) {
    throw new ApiError(
      415,
      `Content-Type ${contentType(req)} is not supported here; send ${expected}`,
    );
  }
}

/** `a.b[0].c` for a zod issue path. */
function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) =>
      typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`,
    )
    .join("");
}

/** The first issue of a failed parse as one sentence that names the field. */
export function describeIssues(error: z.ZodError, what: string): string {
  const issue = error.issues[0];
  const path = formatPath(issue.path);
  // Custom messages name their field with `[]` for any element, as in `inputs[].shape`; fill in
  // the indexes of this issue. zod's own messages need the path in front.
  const indexes = issue.path.filter((key) => typeof key === "number");
  let next = 0;
  const message = issue.message.replace(/\[\]/g, (brackets) =>
    next < indexes.length ? `[${indexes[next++]}]` : brackets,
  );
  const subject = message.split(" ", 1)[0];
  if (path !== "" && path.startsWith(subject)) return message;
  return path === "" ? `${what}: ${message}` : `${path}: ${message}`;
}

/** Validates the parsed JSON body of `req` with `schema`; `what` names the body in messages. */
export function parseJsonBody<T extends z.ZodType>(
  req: Request,
  schema: T,
  what: string,
): z.output<T> {
  requireParsedBody(req);
  const result = schema.safeParse(req.body);
  if (!result.success) throw badRequest(describeIssues(result.error, what));
  return result.data;
}

/** A tensor shape: a list of non-negative integer dimensions; `field` names it in messages. */
export function shapeSchema(field: string, example: string): z.ZodArray<z.ZodInt> {
  const error = `${field} must be an array of non-negative integers, e.g. ${example}`;
  return z.array(z.int({ error }).min(0, { error }), { error });
}
