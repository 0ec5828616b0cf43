/**
 * Threads' numbers and shapes, both faces: the TH_STATE_* run states and THREAD_BASIC_INFO of
 * mach/thread_info.h (OSF MK and xnu values; CMU Mach 3 numbered THREAD_BASIC_INFO 1), and
 * norma's one machine-state flavor. A thread's "machine state" is the JavaScript it runs: a
 * module, an exported function's name and the arguments it gets after its context.
 */
import { MAX_NODES, type NodeId } from './types.js';

/** A thread id carries its node (its task's), as a TaskId does: sequence * MAX_NODES + node. */
export type ThreadId = number & { readonly __brand: 'ThreadId' };

export function makeThreadId(node: NodeId, sequence: number): ThreadId {
  return (sequence * MAX_NODES + node) as ThreadId;
}

export function threadIdNode(id: ThreadId): NodeId {
  return (id % MAX_NODES) as NodeId;
}

/** thread_basic_info.run_state (mach/thread_info.h). */
export const ThreadRunState = {
  /** Running, or ready to: between kernel calls, or in one that does not wait. */
  TH_STATE_RUNNING: 1,
  /** Stopped at a kernel call, yield or wait: its suspend count or its task's is above 0. */
  TH_STATE_STOPPED: 2,
  /** Waiting in the kernel (mach_msg, wait, yield), interruptibly: thread_abort ends the wait. */
  TH_STATE_WAITING: 3,
  TH_STATE_UNINTERRUPTIBLE: 4,
  /** Ended: its code returned or threw, or it (or its task) was terminated. */
  TH_STATE_HALTED: 5,
} as const;
export const {
  TH_STATE_RUNNING, TH_STATE_STOPPED, TH_STATE_WAITING, TH_STATE_UNINTERRUPTIBLE, TH_STATE_HALTED,
} = ThreadRunState;

/** thread_info flavor (mach/thread_info.h, OSF MK and xnu). */
export const THREAD_BASIC_INFO = 3;
/** thread_get_special_port / thread_set_special_port: the thread's own kernel port. */
export const THREAD_KERNEL_PORT = 1;
/**
 * norma's thread_get_state / thread_set_state flavor: the state is a ThreadStateJs. Machine
 * flavors are per architecture in Mach; 555 echoes norma's MIG subsystem base (555000).
 */
export const NORMA_THREAD_STATE_JS = 555;

/** The state of flavor NORMA_THREAD_STATE_JS: what the thread runs when resumed. */
export interface ThreadStateJs {
  /** A module URL or absolute path (the host face also takes a path relative to its cwd). */
  readonly module: string;
  /** The name of an exported function: it is called with (context, ...args). */
  readonly entry: string;
  /** Structured-cloneable arguments after the context. */
  readonly args: readonly unknown[];
}

/** thread_basic_info, as the routine answers it. */
export interface ThreadBasicInfo {
  readonly thread: number;
  readonly task: number;
  readonly node: NodeId;
  readonly suspendCount: number;
  readonly runState: number;
}
