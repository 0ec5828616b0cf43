/**
 * Exceptions as messages (Mach's `exception_triage`): a thread's uncaught throw or rejection is
 * raised as EXC_SOFTWARE (code[0] EXC_SOFT_JS_THROW, or EXC_SOFT_JS_UNCLONEABLE for a result
 * that cannot be cloned; code[1] 0) and sent to the thread's handler for the type, then the
 * task's (then GNU's TASK_EXCEPTION_PORT, if set, as the task's last resort with
 * EXCEPTION_DEFAULT), each as an exc RPC (shared/exc-wire.ts) whose reply the kernel receives
 * itself (kobject.ts). KERN_SUCCESS ends the triage (the caller resumes the thread); any other
 * code, a malformed reply, or a reply right destroyed unused (the handler died) tries the next.
 */
import {
  EXC_RAISE_ID, EXC_RAISE_STATE_ID, EXC_RAISE_STATE_IDENTITY_ID, EXCEPTION_DEFAULT, EXCEPTION_STATE,
  KERN_SUCCESS, TASK_EXCEPTION_PORT,
} from '../../shared/constants.js';
import { decodeExceptionReply, encodeExceptionRaise } from '../../shared/exc-wire.js';
import type { RightInTransit } from '../../shared/message.js';
import type { ExceptionEntry, SerializedError } from '../../shared/protocol.js';
import type { ThreadStateJs } from '../../shared/thread-types.js';
import { Deadline } from '../ipc/clock.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import { kernelReplyPort } from './kobject.js';
import type { ThreadActor } from './thread.js';

/** An exception a thread raised. */
export interface RaisedException {
  readonly exception: number;
  readonly code: readonly [number, number];
  readonly error: SerializedError;
}

/** How the triage ended: a handler took it (with a new state from a state reply), none did, or the thread ended meanwhile. */
export type Triage = { handled: true; state?: { flavor: number; state: ThreadStateJs } } | { handled: false; ended: boolean };

const REQUEST_IDS: Record<number, number> = { 1: EXC_RAISE_ID, 2: EXC_RAISE_STATE_ID, 3: EXC_RAISE_STATE_IDENTITY_ID };

/** The handlers to try, in order: the thread's, the task's (or GNU's single exception port). */
function handlers(thread: ThreadActor, type: number): ExceptionEntry[] {
  const task = thread.task.ipc;
  const gnu = task.specialPort(TASK_EXCEPTION_PORT);
  const taskEntry = task.exceptions.lookup(type) ?? (gnu === undefined ? undefined
    : { port: gnu, behavior: EXCEPTION_DEFAULT, flavor: 0 });
  return [thread.exceptions.lookup(type), taskEntry].filter((entry) => entry !== undefined);
}

export async function exceptionTriage(ipc: NodeIpc, thread: ThreadActor, raised: RaisedException): Promise<Triage> {
  for (const handler of handlers(thread, raised.exception)) {
    if (thread.ended) return { handled: false, ended: true };
    if (!ipc.table.isAlive(handler.port)) continue;
    const reply = await thread.waiting(deliver(ipc, thread, handler, raised));
    if (thread.ended) return { handled: false, ended: true };
    if (reply?.retCode === KERN_SUCCESS) {
      return reply.state === undefined ? { handled: true } : { handled: true, state: { flavor: reply.flavor!, state: reply.state } };
    }
  }
  return { handled: false, ended: thread.ended };
}

/** One exc RPC to `handler`: the decoded reply, or undefined for none (failure). */
async function deliver(ipc: NodeIpc, thread: ThreadActor, handler: ExceptionEntry, raised: RaisedException) {
  const id = REQUEST_IDS[handler.behavior] ?? EXC_RAISE_ID;
  const replyPort = kernelReplyPort(ipc);
  if (replyPort === undefined) return undefined;
  const { table } = ipc;
  const withState = handler.behavior !== EXCEPTION_DEFAULT;
  const rights: RightInTransit[] = [];
  if (handler.behavior !== EXCEPTION_STATE) {
    for (const port of [thread.port, thread.task.ipc.taskPort]) {
      table.addSendRight(port);
      rights.push({ kind: 'send', portId: port });
    }
  }
  const body = encodeExceptionRaise({
    exception: raised.exception, code: raised.code, flavor: withState ? handler.flavor : 0,
    state: withState ? jsonable(thread.state) : undefined, error: raised.error,
  });
  // The kernel's send waits for a queue place like any sender's, ended by the thread's end or abort.
  const deadline = new Deadline(ipc.clock, Infinity, thread.signal);
  let reserved: 'reserved' | 'dead' | 'expired';
  try {
    reserved = await ipc.blocked.reserve(handler.port, deadline);
  } finally {
    deadline.cancel();
  }
  if (reserved !== 'reserved') {
    ipc.kmsgs.destroyContents({ dest: handler.port, sendOnce: false, reply: replyPort.reply, id, body, rights, ool: [], sender: 0, seq: 0 });
    return replyPort.receive(thread.signal).then(() => undefined);
  }
  table.addSendRight(handler.port);
  ipc.route({ dest: handler.port, sendOnce: false, reply: replyPort.reply, id, body, rights, ool: [], sender: 0, seq: 0 });
  const answer = await replyPort.receive(thread.signal);
  return answer === undefined ? undefined : decodeExceptionReply(id, answer.id, answer.body);
}

/** The state as JSON can carry it, or undefined (arguments JSON cannot hold: BigInt, cycles). */
function jsonable(state: ThreadStateJs | undefined): ThreadStateJs | undefined {
  try {
    return state === undefined ? undefined : JSON.parse(JSON.stringify(state)) as ThreadStateJs;
  } catch {
    return undefined;
  }
}
