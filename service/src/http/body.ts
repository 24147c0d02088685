import type { RequestListener, Server, ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import zlib from "node:zlib";
import type { Request, RequestHandler, Response } from "express";
import { ApiError, badRequest } from "./errors";
import type { Turns } from "./turns";

/**
 * Body types the service parses: JSON everywhere, CSV where a route accepts it (MLflow). The first
 * of each is the one the OpenAPI document and messages name.
 */
export const JSON_TYPE = "application/json";
const JSON_TYPES = [JSON_TYPE, "application/*+json"];
export const CSV_TYPE = "text/csv";
export const CSV_TYPES = [CSV_TYPE, "application/csv"];

/** What a client is told to wait before retrying when the service holds too many bodies. */
const RETRY_AFTER_SECONDS = 1;
/** How long a connection keeps discarding a refused body after the answer, before it closes. */
const LINGER_MS = 2_000;

/** The bytes of request bodies the process holds at once, across all connections. */
export class BodyBudget {
  private held = 0;

  constructor(readonly capacityBytes: number) {}

  get heldBytes(): number {
    return this.held;
  }

  /** Takes `bytes` if they fit and says whether they did. */
  tryTake(bytes: number): boolean {
    if (this.held + bytes > this.capacityBytes) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}

export interface BodyLimits {
  /** Largest body of one request, in bytes (after decompression). */
  readonly maxBytes: number;
  /** How long a body may take to arrive, from the moment the route starts reading it. */
  readonly timeoutMs: number;
  readonly budget: BodyBudget;
}

/** Whether the request carries a body at all, by the framing HTTP/1.1 defines. */
export function hasBody(req: Request): boolean {
  return (
    req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"]) > 0
  );
}

const tooLarge = (limit: number) =>
  new ApiError(
    413,
    `request body is larger than the limit of ${limit} bytes; send smaller batches`,
  );

/**
 * Reads the body of a route that takes one, within the service's limits, and parses JSON (into
 * objects) or CSV (into text) in its turn; any other type is left unread for the route to refuse.
 *
 * - A `Content-Length` over `maxBytes` is refused at once, before a byte of the body is read.
 * - The bytes held stay inside `budget` for as long as the request is in flight: a body that does
 *   not fit is refused with 503 and `Retry-After` instead of being buffered.
 * - A body that has not arrived whole within `timeoutMs` is answered 408.
 * Whatever is refused half-read, the error handler closes the connection after the answer
 * (`closeAfterAnswer`).
 */
export function bodyReader(limits: BodyLimits, turns: Turns): RequestHandler {
  return (req, res, next) => {
    if (!hasBody(req)) return next();
    const parse = JSON_TYPES.some((type) => req.is(type))
      ? parseJson
      : CSV_TYPES.some((type) => req.is(type))
        ? (text: string) => text
        : undefined;
    if (!parse) return next();
    const refusal = refuseHeaders(req, limits.maxBytes);
    if (refusal) return next(refusal);

    let taken = 0;
    res.once("close", () => limits.budget.give(taken));
    const charge = (bytes: number): ApiError | undefined => {
      if (!limits.budget.tryTake(bytes)) return busy(res);
      taken += bytes;
      return undefined;
    };
    // A declared length is charged whole and up front; a chunked or compressed body as it comes.
    const declared = req.headers["content-encoding"] ? undefined : declaredLength(req);
    const refused = declared === undefined ? undefined : charge(declared);
    if (refused) return next(refused);

    readStream(req, limits, declared === undefined ? charge : () => undefined, (error, bytes) => {
      if (error) return next(error);
      if (bytes === undefined) return; // the client went away; nobody to answer
      void turns
        .run(() => {
          req.body = parse(decodeUtf8(bytes));
          next();
        })
        .catch(next);
    });
    expectContinue(res);
  };
}

/** 415 for a charset or encoding the reader cannot decode, 413 for a declared length too large. */
function refuseHeaders(req: Request, maxBytes: number): ApiError | undefined {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers["content-type"] ?? "")?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    return new ApiError(
      415,
      `charset ${charset.slice(0, 40)} is not supported; send the body as UTF-8`,
    );
  }
  const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (!(encoding in DECODERS)) {
    return new ApiError(
      415,
      `Content-Encoding ${encoding} is not supported; send the body as ${Object.keys(DECODERS).join(", ")}`,
    );
  }
  const declared = declaredLength(req);
  if (declared !== undefined && declared > maxBytes) return tooLarge(maxBytes);
  return undefined;
}

function declaredLength(req: Request): number | undefined {
  const value = req.headers["content-length"];
  return value === undefined ? undefined : Number(value);
}

function busy(res: Response): ApiError {
  res.setHeader("retry-after", String(RETRY_AFTER_SECONDS));
  return new ApiError(
    503,
    "the service is holding as many request bodies as it can; retry in a moment",
  );
}

const DECODERS: Readonly<
  Record<string, (() => zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress) | null>
> = {
  identity: null,
  gzip: () => zlib.createGunzip(),
  deflate: () => zlib.createInflate(),
  br: () => zlib.createBrotliDecompress(),
};

type Done = (error: ApiError | undefined, bytes?: Buffer) => void;

/**
 * Collects the (decompressed) body, charging each chunk with `charge`. Calls `done` once: with
 * the bytes, with an error (reading stops), or with neither when the client aborted.
 */
function readStream(
  req: Request,
  limits: BodyLimits,
  charge: (bytes: number) => ApiError | undefined,
  done: Done,
): void {
  const makeDecoder = DECODERS[(req.headers["content-encoding"] ?? "identity").toLowerCase()];
  const decoder = makeDecoder?.();
  const source: Readable = decoder ? req.pipe(decoder) : req;
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;

  const finish: Done = (error, bytes) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    source.off("data", onData).off("end", onEnd);
    req.off("close", onClose);
    if (decoder) {
      decoder.off("error", onDecodeError);
      req.unpipe(decoder);
      decoder.destroy();
    }
    // Stop pulling bytes off the wire; the answer closes the connection.
    if (error) req.pause();
    done(error, bytes);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limits.maxBytes) return finish(tooLarge(limits.maxBytes));
    const refused = charge(chunk.length);
    if (refused) return finish(refused);
    chunks.push(chunk);
  };
  const onEnd = () => finish(undefined, Buffer.concat(chunks, received));
  const onDecodeError = (error: Error) =>
    finish(
      badRequest(`the body is not valid ${req.headers["content-encoding"]} data: ${error.message}`),
    );
  // The client went away before its body was whole.
  const onClose = () => {
    if (!req.complete) finish(undefined);
  };
  const timer = setTimeout(
    () =>
      finish(
        new ApiError(
          408,
          `the request body did not arrive within ${limits.timeoutMs / 1000} s; send it without pauses`,
        ),
      ),
    limits.timeoutMs,
  );
  source.on("data", onData).on("end", onEnd);
  decoder?.on("error", onDecodeError);
  req.on("close", onClose);
}

/**
 * Answers `res` with `Connection: close` for a request whose body was not read whole, and closes
 * the connection gracefully: the answer goes out, then the rest of the body is read and thrown
 * away for up to LINGER_MS. Node would close at once, and closing a socket with unread bytes
 * makes the kernel reset the connection, which can destroy the answer before the client reads
 * it (the reason web servers "linger" on close); the client would see a reset, not its 413.
 */
export function closeAfterAnswer(req: Request, res: Response): void {
  res.setHeader("connection", "close");
  const socket = req.socket;
  // Node calls destroySoon on the socket once a `Connection: close` answer is finished.
  socket.destroySoon = () => {
    socket.end();
    req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  };
}

/** UTF-8 text without a leading byte-order mark. */
function decodeUtf8(bytes: Buffer): string {
  const text = bytes.toString("utf8");
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** JSON whose top level is an object or an array, as every protocol's body is. */
function parseJson(text: string): unknown {
  const first = /\S/.exec(text)?.[0];
  if (first !== "{" && first !== "[") {
    throw badRequest("malformed JSON body: expected a JSON object or array");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest(`malformed JSON body: ${(error as Error).message}`);
  }
}

/** Responses the server handed over without the automatic `100 Continue`. */
const awaitingContinue = new WeakSet<ServerResponse>();

/**
 * Hands requests that say `Expect: 100-continue` to `handler` without Node's automatic 100: the
 * reader sends it once it accepts the body, so a body refused on its headers is never sent.
 */
export function continueOnlyForAcceptedBodies(server: Server, handler: RequestListener): void {
  server.on("checkContinue", (req, res) => {
    awaitingContinue.add(res);
    handler(req, res);
  });
}

function expectContinue(res: ServerResponse): void {
  if (awaitingContinue.delete(res)) res.writeContinue();
}
