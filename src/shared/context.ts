/**
 * What code running in a task receives as its first argument: the task's node, its memory, and
 * its Mach calls; a thread's context adds its thread calls, wait() and yield(). Public types;
 * the node kernel builds them (actors/kern).
 */
import type { TaskIpcMach } from './ipc-facade.js';
import type { MachMsgReceived, MachMsgSend } from './message.js';
import type { TaskCreateMach, TaskMach } from './task-facade.js';
import type { ThreadMach } from './thread-facade.js';
import type { NodeId, TaskId } from './types.js';

/** A typed-array type a view can take (Int32Array for Atomics, Float64Array for numbers, ...). */
export type ViewType<V extends ArrayBufferView> = {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): V;
  readonly BYTES_PER_ELEMENT: number;
};

/**
 * mach_msg as a synchronous call, for tight loops: no promise at all. It never waits (a node's
 * threads share one event loop, so a call that waited synchronously would stop them all):
 * where mach_msg would wait for a queue place or a message it answers MACH_SEND_TIMED_OUT or
 * MACH_RCV_TIMED_OUT, exactly as mach_msg with MACH_SEND_TIMEOUT | MACH_RCV_TIMEOUT and a
 * timeout of 0 (Mach's "never wait"), having done what it could (a send whose receive would
 * wait: sent, then MACH_RCV_TIMED_OUT). It answers MACH_SEND_INTERRUPTED (MACH_RCV_INTERRUPTED
 * for a receive only), having done nothing, when the calling thread must stop at the call gate
 * (suspended, aborted, terminated) or has used up its timeslice: then await mach_msg, which
 * stops or yields there. So a loop calls mach_msg_trap and falls back to mach_msg on any kr
 * but success.
 */
export interface MachMsgTrap {
  mach_msg_trap(msg: MachMsgSend | null, option: number, send_size?: number, rcv_size?: number, rcv_name?: number):
    { kr: number; msg?: MachMsgReceived; size?: number };
}

/** What user code run in a task (taskExecute) receives as its first argument. */
export interface TaskContext {
  readonly node: NodeId;
  readonly task: TaskId;
  readonly pageSize: number;
  /**
   * A view over the task's memory itself (the region's SharedArrayBuffer, shared with every task
   * and node mapping it) at [address, address + size): a Uint8Array, or an array of `type`, for
   * which `address` and `size` must be multiples of its element size. Throws KernError.
   */
  view(address: number, size: number): Uint8Array;
  view<V extends ArrayBufferView>(address: number, size: number, type: ViewType<V>): V;
  /**
   * The IPC calls as this task makes them (names in its space), run right here on its node; and
   * the task and VM calls on any task this one holds a send right to the kernel port of,
   * task_create and the norma_task_* calls among them (a child answered as a name here).
   */
  readonly mach: TaskIpcMach & TaskMach<number> & TaskCreateMach & MachMsgTrap;
}

/** What wait() answers: Atomics.waitAsync's words, or 'interrupted' (thread_abort). */
export type WaitResult = 'ok' | 'not-equal' | 'timed-out' | 'interrupted';

/**
 * What a thread's entry receives first. Every `mach` call, wait() and yield() is a point where
 * other threads of the node, and its kernel, run; and where suspension, abort and termination
 * of the thread take effect.
 */
export interface ThreadContext extends TaskContext {
  /** This thread's id (thread_info's `thread`). */
  readonly thread: number;
  /**
   * Atomics.waitAsync on `view[index]` while it holds `value`, up to `timeout` ms: the node runs
   * other threads meanwhile. 'interrupted' after thread_abort; never returns once terminated.
   */
  wait(view: Int32Array | BigInt64Array, index: number, value: number | bigint, timeout?: number): Promise<WaitResult>;
  /** Lets the node run everything else that is ready, then continues. */
  yield(): Promise<void>;
  /** Thread calls take thread port names in this task's space, task calls task port names. */
  readonly mach: TaskIpcMach & TaskMach<number> & TaskCreateMach & MachMsgTrap & ThreadMach<number, number> & {
    /** mach_thread_self: a send right to this thread's kernel port, named in its task's space. */
    mach_thread_self(): Promise<{ kr: number; name: number }>;
  };
}
