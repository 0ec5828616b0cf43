/**
 * Task and thread calls sent as messages to a task's or thread's kernel port (MIG's server side
 * of the task and thread_act subsystems), as norma lays the bodies out. Task code on any node
 * builds a request with kobjectRequest and reads the answer with decodeKobjectReply.
 *
 * Message ids follow xnu's task.defs / thread_act.defs routine order (task.defs was split out of
 * OSF's mach.defs keeping its order), with the task routines on OSF's `mach` base 2000 and the
 * thread routines on xnu's `thread_act` base 3600 (OSF's mach.defs base has no thread_act part).
 *
 *   request: 0 NDR record (8 bytes, zero); 8.. the routine's 32-bit scalar arguments
 *            (thread_info and thread_get_state: the flavor at 8).
 *   reply:   msgh_id = request id + 100; 0 NDR record; 8 RetCode (kern_return_t, int32 LE);
 *            12 byte count of the out-values (uint32 LE, 0 for none); 16 their UTF-8 JSON.
 *   A request without a reply right is served and answered with nothing, as MIG does.
 */
import { MIG_REPLY_OFFSET } from './constants.js';

/** Unknown msgh_id (mig_errors.h). */
export const MIG_BAD_ID = -303;

export const KobjectCall = {
  task_terminate: 2001,
  task_threads: 2002,
  task_info: 2005,
  task_suspend: 2007,
  task_resume: 2008,
  thread_terminate: 3600,
  thread_get_state: 3603,
  thread_suspend: 3605,
  thread_resume: 3606,
  thread_abort: 3607,
  thread_info: 3612,
} as const;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request body: the NDR record, then `args` as 32-bit words. */
export function kobjectRequest(args: readonly number[] = []): Uint8Array {
  const body = new Uint8Array(8 + 4 * args.length);
  const view = new DataView(body.buffer);
  args.forEach((arg, index) => view.setInt32(8 + 4 * index, arg, true));
  return body;
}

/** The `index`th 32-bit argument of a request, or undefined when the body is too short. */
export function kobjectArgument(body: Uint8Array, index: number): number | undefined {
  const at = 8 + 4 * index;
  if (body.length < at + 4) return undefined;
  return new DataView(body.buffer, body.byteOffset, body.byteLength).getInt32(at, true);
}

/** The reply to `requestId`: RetCode and, when given, the out-values as JSON. */
export function kobjectReply(requestId: number, retCode: number, out?: unknown): { id: number; body: Uint8Array } {
  const json = out === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(out));
  const body = new Uint8Array(16 + json.length);
  const view = new DataView(body.buffer);
  view.setInt32(8, retCode, true);
  view.setUint32(12, json.length, true);
  body.set(json, 16);
  return { id: requestId + MIG_REPLY_OFFSET, body };
}

/** A reply's RetCode and out-values; undefined when `id` does not answer `requestId` or the body is malformed. */
export function decodeKobjectReply(requestId: number, id: number, body: Uint8Array): { retCode: number; out?: unknown } | undefined {
  if (id !== requestId + MIG_REPLY_OFFSET || body.length < 12) return undefined;
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const retCode = view.getInt32(8, true);
  const count = body.length < 16 ? 0 : view.getUint32(12, true);
  if (count === 0) return { retCode };
  if (body.length < 16 + count) return undefined;
  try {
    return { retCode, out: JSON.parse(decoder.decode(body.subarray(16, 16 + count))) as unknown };
  } catch {
    return undefined;
  }
}
