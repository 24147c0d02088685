/**
 * A client's mistake, answered with `status` and a message that says what to fix. Anything else
 * that reaches the error handler is a server fault: logged in full, answered 500 without details.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (message: string): ApiError => new ApiError(400, message);
export const notFound = (message: string): ApiError => new ApiError(404, message);
