/**
 * The few calls of MLflow's REST API (`/api/2.0/mlflow/...`) that resolve a registered model, and
 * the errors a user can act on. Every failure is a {@link RegistryError} naming the model.
 */

/** A registry answer a user must act on; the message says what to do. */
export class RegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RegistryError";
  }
}

/** One version of a registered model, as `model-versions/get` and `.../alias` answer it. */
export interface ModelVersion {
  readonly name: string;
  readonly version: string;
  /** Where it was registered from: `models:/m-<id>` (MLflow 3), `runs:/...` or a store URI. */
  readonly source: string;
  readonly run_id?: string;
  /** READY once registration is done; PENDING_REGISTRATION or FAILED_REGISTRATION before. */
  readonly status?: string;
  readonly aliases?: readonly string[];
}

/** A registered model, as `registered-models/get` answers it. */
interface RegisteredModel {
  readonly name: string;
  readonly aliases?: readonly { alias: string; version: string }[];
  readonly latest_versions?: readonly { version: string }[];
}

/** An MLflow error body: `{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`. */
interface ApiError {
  readonly error_code?: string;
  readonly message?: string;
}

/** How long one call may take: a registry that does not answer must not hang `pulumi up`. */
const CALL_TIMEOUT_MS = 30_000;

/** A client of one tracking server, for one registered model (named in every message). */
export class MlflowClient {
  constructor(
    private readonly trackingUri: string,
    private readonly token: string | undefined,
    /** The `models:/...` URI being resolved, as messages name it. */
    private readonly model: string,
  ) {}

  /** The version an alias points at; unknown model or alias each get their own message. */
  async versionByAlias(name: string, alias: string): Promise<ModelVersion> {
    const answer = await this.get<{ model_version: ModelVersion }>("registered-models/alias", {
      name,
      alias,
    });
    if ("model_version" in answer) return answer.model_version;
    const model = await this.registeredModel(name);
    const aliases = (model.aliases ?? []).map((entry) => `@${entry.alias}`).join(", ");
    throw new RegistryError(
      `registered model "${name}" has no alias "${alias}" (${aliases ? `its aliases: ${aliases}` : "it has none"}); ` +
        `set it with MlflowClient().set_registered_model_alias("${name}", "${alias}", <version>)`,
    );
  }

  /** One version by number; an unknown model or version each get their own message. */
  async version(name: string, version: string): Promise<ModelVersion> {
    const answer = await this.get<{ model_version: ModelVersion }>("model-versions/get", {
      name,
      version,
    });
    if ("model_version" in answer) return answer.model_version;
    const model = await this.registeredModel(name);
    const latest = (model.latest_versions ?? []).map((entry) => Number(entry.version));
    throw new RegistryError(
      `registered model "${name}" has no version ${version}` +
        (latest.length > 0 ? ` (its latest is ${Math.max(...latest)})` : " (it has none)") +
        `; point modelUri at a version it has, or an alias`,
    );
  }

  /** Where a version's files are: the store URI MLflow resolves its source to. */
  async artifactLocation(name: string, version: string): Promise<string> {
    const answer = await this.get<{ artifact_uri: string }>("model-versions/get-download-uri", {
      name,
      version,
    });
    if (!("artifact_uri" in answer) || typeof answer.artifact_uri !== "string") {
      throw new RegistryError(
        `the MLflow tracking server at ${this.trackingUri} gave no artifact location for version ${version} of "${name}": ${JSON.stringify(answer)}`,
      );
    }
    return answer.artifact_uri;
  }

  private async registeredModel(name: string): Promise<RegisteredModel> {
    const answer = await this.get<{ registered_model: RegisteredModel }>("registered-models/get", {
      name,
    });
    if ("registered_model" in answer) return answer.registered_model;
    throw new RegistryError(
      `registered model "${name}" does not exist at ${this.trackingUri}; register it ` +
        "(registered_model_name= when logging it, or mlflow.register_model) or fix modelUri",
    );
  }

  /**
   * GETs `/api/2.0/mlflow/<path>`: the answer, or the API's error body for a model, version or
   * alias that does not exist. Anything else (no server, refused credentials, a server error)
   * throws a {@link RegistryError}.
   */
  private async get<T>(path: string, query: Record<string, string>): Promise<T | ApiError> {
    const url = `${this.trackingUri}/api/2.0/mlflow/${path}?${new URLSearchParams(query).toString()}`;
    let response: Response;
    try {
      response = await this.fetchOnce(url).catch((error: unknown) => {
        // A kept-alive connection the server closed as this request went out: fetch does not
        // retry it, and a GET is safe to send again, once, on a new connection.
        if (connectionDropped(error)) return this.fetchOnce(url);
        throw error;
      });
    } catch (error) {
      const { name, message, cause } = error as Error & {
        cause?: { code?: string; message?: string };
      };
      // fetch says only "fetch failed"; its cause says why (ECONNREFUSED, ENOTFOUND, ...).
      const why =
        name === "TimeoutError" ? "no answer in 30 s" : (cause?.code ?? cause?.message ?? message);
      throw new RegistryError(
        `cannot reach the MLflow tracking server at ${this.trackingUri} (${why}); check ` +
          "mlflowTrackingUri and that this machine reaches it",
      );
    }
    const text = await response.text();
    if (response.status === 401 || response.status === 403) {
      throw new RegistryError(
        `the MLflow tracking server at ${this.trackingUri} refused the request (HTTP ${response.status}); ` +
          "set a token it accepts with: pulumi config set --secret mlflowTrackingToken <token>",
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const error = body as ApiError | undefined;
    const missing =
      error?.error_code === "RESOURCE_DOES_NOT_EXIST" ||
      (error?.error_code === "INVALID_PARAMETER_VALUE" && /not found/i.test(error.message ?? ""));
    if (response.ok || missing) return body as T | ApiError;
    throw new RegistryError(
      `the MLflow tracking server at ${this.trackingUri} answered HTTP ${response.status} while ` +
        `resolving ${this.model}: ${(error?.message ?? text).slice(0, 300)}`,
    );
  }

  private fetchOnce(url: string): Promise<Response> {
    return fetch(url, {
      headers: this.token === undefined ? {} : { authorization: `Bearer ${this.token}` },
      signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    });
  }
}

/** Whether fetch failed because the connection closed before an answer (not a refusal or timeout). */
function connectionDropped(error: unknown): boolean {
  const code = (error as { cause?: { code?: string } }).cause?.code;
  return code === "UND_ERR_SOCKET" || code === "ECONNRESET";
}
