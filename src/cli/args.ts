/**
 * Command-line values for every `norma` command: node:util parseArgs, with each bad value
 * refused by a UsageError that names its option (the command exits 2).
 */

export class UsageError extends Error {}

/** Runs node:util parseArgs (strict); an unknown option or a missing value becomes a UsageError. */
export function parseCommand<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** A whole number from `min` to `max`, or `fallback` when the option is absent. */
export function integerOption(value: string | undefined, option: string, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const parsed = /^(0x[0-9a-f]+|\d+)$/i.test(value.trim()) ? Number(value.trim()) : NaN;
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    throw new UsageError(`--${option} must be a whole number from ${min} to ${max}, not '${value}'`);
  }
  return parsed;
}

/** A duration in ms: `500ms`, `5s`, `1.5m`, or a bare number of seconds. */
export function durationOption(value: string | undefined, option: string, fallbackMs: number): number {
  if (value === undefined) return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  const ms = match === null ? NaN : Number(match[1]) * (match[2] === 'ms' ? 1 : match[2] === 'm' ? 60_000 : 1000);
  if (!Number.isFinite(ms) || ms < 1 || ms > 24 * 3_600_000) {
    throw new UsageError(`--${option} must be a duration such as 500ms, 5s or 2m (at most 24 h), not '${value}'`);
  }
  return Math.round(ms);
}
