/**
 * What code running in a task receives as its first argument: the task's node, its memory, and
 * its Mach calls. Public type; the node kernel builds it (actors/kern).
 */
import type { TaskIpcMach } from './ipc-facade.js';
import type { TaskMach } from './task-facade.js';
import type { NodeId, TaskId } from './types.js';

/** What user code run in a task (taskExecute) receives as its first argument. */
export interface TaskContext {
  readonly node: NodeId;
  readonly task: TaskId;
  readonly pageSize: number;
  /** A Uint8Array over the task's memory at [address, address + size); throws KernError. */
  view(address: number, size: number): Uint8Array;
  /**
   * The IPC calls as this task makes them (names in its space), run right here on its node; and
   * the task and VM calls on any task this one holds a send right to the kernel port of.
   */
  readonly mach: TaskIpcMach & TaskMach<number>;
}
