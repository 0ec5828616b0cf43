/** The one error file: KernError, and the kern_return_t ↔ name tables. */
import { KernReturn, MachMsgReturn, type KernReturnName } from './constants.js';
import type { SerializedError } from './protocol.js';

const namesByCode = new Map<number, string>();
for (const table of [KernReturn, MachMsgReturn]) {
  for (const [name, code] of Object.entries(table)) {
    if (!namesByCode.has(code)) namesByCode.set(code, name);
  }
}

/** The Mach name of a return code, e.g. `krName(15) === 'KERN_INVALID_NAME'`. */
export function krName(kr: number): string {
  return namesByCode.get(kr) ?? `KERN_RETURN_${kr}`;
}

/**
 * A kernel call's failure on the idiomatic face. `code` is the Mach name and `kr` its number,
 * so callers can switch on either; `cause` carries the underlying failure when a node crashed.
 */
export class KernError extends Error {
  override readonly name = 'KernError';
  readonly code: KernReturnName | string;
  readonly kr: number;

  constructor(kr: number, message?: string, options?: { cause?: unknown }) {
    const code = krName(kr);
    super(message ? `${code}: ${message}` : code, options);
    this.code = code;
    this.kr = kr;
  }
}

/** An error as it crosses the wire (NodeFault): what structured clone would lose, kept. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    return error.stack === undefined
      ? { name: error.name, message: error.message }
      : { name: error.name, message: error.message, stack: error.stack };
  }
  return { name: 'Error', message: String(error) };
}
