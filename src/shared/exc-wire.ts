/**
 * The exc subsystem's message bodies (MIG's exc.defs, msgh_id base 2400), as norma lays them out
 * after its header and port descriptors. A handler on any node decodes a request with
 * decodeExceptionRaise and answers with exceptionReply, as MIG's exc_server would.
 *
 *   request, all three ids (little-endian 32-bit words):
 *     0   NDR record (8 bytes, zero)
 *     8   exception            (EXC_*)
 *     12  codeCnt              (2)
 *     16  code[0], code[1]
 *     24  flavor               (2402/2403 only; otherwise 0)
 *     28  old_stateCnt         bytes of the state's JSON (2402/2403 only; otherwise 0)
 *     32  old_state            UTF-8 JSON of { module, entry, args }, padded to 4 bytes
 *     ..  errorCnt, then the error's UTF-8 JSON { name, message, stack } (norma's addition)
 *   ports (2401 and 2403): [0] a send right to the thread's kernel port, [1] to the task's;
 *   the reply right is a send-once right to a port the kernel itself receives on.
 *
 *   reply: msgh_id = request id + 100; 0 NDR record, 8 RetCode (kern_return_t); for 2402/2403
 *   optionally 12 flavor, 16 new_stateCnt, 20 new_state (JSON, as above).
 */
import { EXC_RAISE_ID, MIG_REPLY_OFFSET } from './constants.js';
import type { SerializedError } from './protocol.js';
import type { ThreadStateJs } from './thread-types.js';

export const NDR_RECORD_SIZE = 8;

/** An exception request, decoded. */
export interface ExceptionRaise {
  readonly exception: number;
  readonly code: readonly number[];
  readonly flavor: number;
  readonly state?: ThreadStateJs;
  readonly error?: SerializedError;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const pad4 = (n: number) => (n + 3) & ~3;

export function encodeExceptionRaise(raise: ExceptionRaise): Uint8Array {
  const state = raise.state === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(raise.state));
  const error = raise.error === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(raise.error));
  const errorAt = 32 + pad4(state.length);
  const body = new Uint8Array(errorAt + 4 + error.length);
  const view = new DataView(body.buffer);
  view.setInt32(8, raise.exception, true);
  view.setInt32(12, raise.code.length, true);
  raise.code.forEach((code, index) => view.setInt32(16 + 4 * index, code, true));
  view.setInt32(24, raise.flavor, true);
  view.setUint32(28, state.length, true);
  body.set(state, 32);
  view.setUint32(errorAt, error.length, true);
  body.set(error, errorAt + 4);
  return body;
}

/** The request's fields; undefined for a body too short to be one. */
export function decodeExceptionRaise(body: Uint8Array): ExceptionRaise | undefined {
  if (body.length < 36) return undefined;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const stateCnt = view.getUint32(28, true);
  const errorAt = 32 + pad4(stateCnt);
  if (body.length < errorAt + 4) return undefined;
  const errorCnt = view.getUint32(errorAt, true);
  const json = (from: number, count: number) => count === 0 ? undefined
    : JSON.parse(decoder.decode(body.subarray(from, from + count))) as never;
  return {
    exception: view.getInt32(8, true),
    code: [view.getInt32(16, true), view.getInt32(20, true)],
    flavor: view.getInt32(24, true),
    state: json(32, stateCnt),
    error: json(errorAt + 4, errorCnt),
  };
}

/**
 * The reply MIG's exc_server sends for request `requestId`: NDR record, RetCode at 8; with
 * `newState` (2402/2403) its flavor, byte count and JSON.
 */
export function exceptionReply(requestId: number, retCode: number, newState?: { flavor: number; state: ThreadStateJs }):
  { id: number; body: Uint8Array } {
  const state = newState === undefined ? undefined : encoder.encode(JSON.stringify(newState.state));
  const body = new Uint8Array(state === undefined ? 12 : 20 + state.length);
  const view = new DataView(body.buffer);
  view.setInt32(8, retCode, true);
  if (state !== undefined) {
    view.setInt32(12, newState!.flavor, true);
    view.setUint32(16, state.length, true);
    body.set(state, 20);
  }
  return { id: requestId + MIG_REPLY_OFFSET, body };
}

/** A reply's RetCode and new state; undefined when `id` does not answer `requestId` or the body is short. */
export function decodeExceptionReply(requestId: number, id: number, body: Uint8Array):
  { retCode: number; flavor?: number; state?: ThreadStateJs } | undefined {
  if (id !== requestId + MIG_REPLY_OFFSET || body.length < 12) return undefined;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const retCode = view.getInt32(8, true);
  if (requestId === EXC_RAISE_ID || body.length < 20) return { retCode };
  const count = view.getUint32(16, true);
  if (count === 0 || body.length < 20 + count) return { retCode };
  try {
    return { retCode, flavor: view.getInt32(12, true), state: JSON.parse(decoder.decode(body.subarray(20, 20 + count))) as ThreadStateJs };
  } catch {
    return { retCode };
  }
}
