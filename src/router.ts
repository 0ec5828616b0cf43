/**
 * What the host's handles need from the kernel, as an interface: one routine on a node, the
 * four creation calls, and whether a value is one of its task handles. `Kernel` implements it;
 * `Task` and the `kernel.mach` facade depend on this alone, so the host files import one way
 * (router <- mach <- task <- kernel) and form no cycle.
 */
import type { TaskIpcMach } from './shared/ipc-facade.js';
import type { ForkMode, NodeApi, Reply, TaskLedgers } from './shared/protocol.js';
import type { ThreadId } from './shared/thread-types.js';
import type { NodeId, TaskId } from './shared/types.js';

/** A task as the facade sees it: where it lives, and its own IPC calls (names in its space). */
export interface TaskHandle {
  readonly id: TaskId;
  readonly node: NodeId;
  readonly mach: TaskIpcMach;
}

/** A thread as the facade sees it: its id, its node (its task's) and its task. */
export interface ThreadHandle {
  readonly id: ThreadId;
  readonly node: NodeId;
  readonly task: TaskHandle;
}

export interface TaskRouter<T extends TaskHandle, A extends ThreadHandle = ThreadHandle> {
  readonly pageSize: number;
  /** How many nodes the kernel runs. */
  readonly nodes: number;
  /** True when `value` is a task handle of this kernel. */
  owns(value: unknown): value is T;
  /** True when `value` is a thread handle of this kernel. */
  ownsThread(value: unknown): value is A;
  /** The handle of thread `id` of `task`. */
  thread(task: T, id: ThreadId): A;
  /**
   * Runs a routine on `node`. A node that is down answers `{ kr: KERN_NODE_DOWN }`; arguments
   * that cannot cross to a node answer KERN_INVALID_ARGUMENT; memory objects the routine
   * released for good are handed to their home pagers before this resolves.
   */
  request<K extends keyof NodeApi>(node: NodeId, method: K, ...args: Parameters<NodeApi[K]>): Promise<Reply<K>>;
  /** The four task-creation calls (see Kernel.fork). */
  fork(parent: unknown, mode: ForkMode, inheritMemory: unknown, childNode: unknown,
    ledgers: TaskLedgers | null): Promise<{ kr: number; child?: T }>;
}
