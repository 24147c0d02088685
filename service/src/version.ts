/**
 * The service's own version, reported by `/openapi.json`, `GET /v2` and MLflow's `/version`.
 * A test keeps it equal to service/package.json's.
 */
export const SERVICE_VERSION = "0.1.0";
