import pino, { type DestinationStream, type Level, type Logger } from "pino";
import { withoutUrlSecrets } from "./redact";

/** Cloud Logging's name for each pino level, so GKE shows warnings and errors as such. */
const SEVERITY: Readonly<Record<Level, string>> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};

/**
 * The service's JSON logger. Each line carries `severity` and `message` (the fields Cloud Logging
 * reads, so GKE shows levels instead of all INFO), pino's numeric `level` for everything else,
 * and an ISO `time`. Lines pass through `withoutUrlSecrets` on their way out.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: "mlscore" },
    messageKey: "message",
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: {
      level: (label, number) => ({
        severity: SEVERITY[label as Level] ?? "DEFAULT",
        level: number,
      }),
    },
    hooks: { streamWrite: withoutUrlSecrets },
  };
  return destination ? pino(options, destination) : pino(options);
}
