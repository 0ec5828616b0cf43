/**
 * The call gate every kernel call of a thread passes (context.mach, wait, yield): the points
 * where a node's threads interleave, and so where the kernel's decisions about a thread take
 * effect. Before the call and after it, the thread stops while it or its task is suspended
 * (task_suspend stops every thread at its next call), and a terminated thread never gets past
 * (its call stays pending). During it, the thread's abort signal is what its waits listen to.
 */
import { KERN_SUCCESS, MACH_PORT_DEAD, MACH_SEND_INVALID_DEST } from '../../shared/constants.js';
import type { ThreadContext, WaitResult } from '../../shared/context.js';
import type { NodeApi } from '../../shared/protocol.js';
import type { CallOnTask, ForkOnTask } from '../../shared/task-facade.js';
import { threadMach, type CallOnThread } from '../../shared/thread-facade.js';
import { threadIdNode, type ThreadId } from '../../shared/thread-types.js';
import type { NodeId, PortId } from '../../shared/types.js';
import { PortKind } from '../ipc/port-table.js';
import type { PortTable } from '../ipc/port-table.js';
import type { TaskActor } from './task.js';
import { machMsgTrap, resumesTaskCode, taskContext } from './task-code.js';
import type { LocalRoutine } from './task-port.js';
import type { ThreadActor } from './thread.js';
import { nextTurn, sliceLeft } from './timeslice.js';

/**
 * Runs `call` as a kernel call of `thread`, through the gate; one that `waits` shows as
 * TH_STATE_WAITING. A runnable thread within its timeslice enters at once, and a call that
 * completes without waiting answers synchronously (no promise chain); otherwise the thread
 * first yields or stops at the gate, and after a wait stops there again if it must.
 */
export function syscall<T>(thread: ThreadActor, call: (abort: AbortSignal) => T | Promise<T>, waits = false): T | Promise<T> {
  if (!sliceLeft() || !thread.runnable) return gatedSlowly(thread, call, waits);
  let result: T | Promise<T>;
  try {
    result = call(thread.signal);
  } catch (error) {
    return Promise.reject(error);
  }
  if (!(result instanceof Promise)) return thread.runnable ? result : thread.checkpoint().then(() => result);
  return (waits ? thread.waiting(result) : result).then((value) => thread.runnable ? value : thread.checkpoint().then(() => value));
}

async function gatedSlowly<T>(thread: ThreadActor, call: (abort: AbortSignal) => T | Promise<T>, waits: boolean): Promise<T> {
  await nextTurn();
  await thread.checkpoint();
  const running = Promise.resolve().then(() => call(thread.signal));
  const result = await (waits ? thread.waiting(running) : running);
  await thread.checkpoint();
  return result;
}

/** What the node gives a thread's context: its task's routines and the way to other nodes. */
export interface ThreadCallsOfTask {
  /** A routine of this node for the task. */
  call(method: keyof NodeApi, args: unknown[]): unknown;
  /** A routine on the task a task port name of the task's space denotes. */
  onTask: CallOnTask<number>;
  /** The task-creation calls on a task port name of the task's space (fork-calls.ts). */
  fork: ForkOnTask;
  /** A routine of this node with `target` (a task or thread id) as first argument. */
  local: LocalRoutine;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
  table: PortTable;
}

/** A send right to `port` (a thread's kernel port) added to `task`'s space, by name; MACH_PORT_DEAD once it died. */
export function sendRightName(task: TaskActor, table: PortTable, port: PortId): number {
  if (!table.isAlive(port)) return MACH_PORT_DEAD;
  table.addSendRight(port);
  const { kr, name } = task.ipc.rights.copyout({ kind: 'send', portId: port });
  return kr === KERN_SUCCESS ? name : MACH_PORT_DEAD;
}

/** The context a thread's entry receives: its task's context, each call gated, and its thread calls. */
export function threadContext(thread: ThreadActor, pageSize: number, calls: ThreadCallsOfTask): ThreadContext {
  const { task } = thread;
  const gatedCall = (method: keyof NodeApi, args: unknown[]) => syscall(thread, (abort) =>
    calls.call(method, method === 'machMsg' ? withAbort(args, abort) : args), method === 'machMsg');
  const onTask = calls.onTask as (name: number, ...rest: unknown[]) => Promise<{ kr: number }>;
  const gatedOnTask = ((name: number, ...rest: unknown[]) => syscall(thread, () => onTask(name, ...rest))) as CallOnTask<number>;
  const onThread: CallOnThread<number> = (name, method, ...args) => syscall(thread, async () => {
    task.ipc.refresh(name);
    const entry = task.ipc.space.lookup(name as never);
    const target = entry?.port == null ? undefined : calls.table.kobjectOf(entry.port, PortKind.THREAD) as ThreadId | undefined;
    // No send right to a live thread's kernel port: what a message to it would answer (task-port.ts).
    if (target === undefined) return { kr: MACH_SEND_INVALID_DEST } as never;
    const node = threadIdNode(target);
    return (node === task.node ? calls.local(method, target as never, args) : calls.callNode(node, method, [target, ...args])) as never;
  });
  const gatedFork: ForkOnTask = (...args) => Promise.resolve(syscall(thread, () => calls.fork(...args)));
  const base = taskContext(task, pageSize, gatedCall, gatedOnTask, gatedFork, thread.id);
  const gated = <T>(run: (abort: AbortSignal) => T | Promise<T>, waits = false) =>
    resumesTaskCode(task.id, syscall(thread, run, waits), thread.id);
  // Each settling marks the thread's code as running again (the node's activity word).
  const tracked = <F>(call: unknown) => ((...all: unknown[]) =>
    resumesTaskCode(task.id, (call as (...all: unknown[]) => Promise<unknown>)(...all), thread.id)) as F;
  return {
    ...base,
    thread: thread.id,
    mach: {
      ...base.mach,
      ...threadMach<number, number>({
        onTask: tracked<CallOnTask<number>>(gatedOnTask),
        onThread: tracked<CallOnThread<number>>(onThread),
        act: (_task, ref) => sendRightName(task, calls.table, ref.port),
        state: (state) => state,
      }),
      mach_thread_self: () => gated(() => ({ kr: KERN_SUCCESS, name: sendRightName(task, calls.table, thread.port) })),
      mach_msg_trap: machMsgTrap(task.id, thread.id, calls.call, () => sliceLeft() && thread.runnable ? thread.signal : undefined),
    },
    wait: (view, index, value, timeout) => gated((abort) => atomicsWait(view, index, value, timeout, abort), true),
    yield: () => gated(() => new Promise<void>((resolve) => setImmediate(resolve)), true),
  };
}

/** mach_msg's routine arguments with the thread's abort signal after rcvSize. */
function withAbort(args: unknown[], abort: AbortSignal): unknown[] {
  const padded = args.slice(0, 5);
  padded.length = 5;
  return [...padded, abort];
}

/** Atomics.waitAsync, ended by `abort` ('interrupted'), leaving no listener behind. */
async function atomicsWait(view: Int32Array | BigInt64Array, index: number, value: number | bigint,
  timeout: number | undefined, abort: AbortSignal): Promise<WaitResult> {
  const waited = (Atomics.waitAsync as (view: Int32Array | BigInt64Array, index: number, value: number | bigint,
    timeout?: number) => { async: boolean; value: WaitResult | Promise<WaitResult> })(view, index, value, timeout ?? Infinity);
  if (!waited.async) return waited.value as WaitResult;
  if (abort.aborted) return 'interrupted';
  let onAbort = (): void => {};
  const interrupted = new Promise<WaitResult>((resolve) => {
    onAbort = () => resolve('interrupted');
    abort.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([waited.value as Promise<WaitResult>, interrupted]);
  } finally {
    abort.removeEventListener('abort', onAbort);
  }
}
