/**
 * Calls task code makes naming a task by a send right to its kernel port: what lets a holder
 * operate on a task, wherever it lives (the routine runs on the task's node).
 */
import { MACH_SEND_INVALID_DEST } from '../../shared/constants.js';
import type { NodeApi } from '../../shared/protocol.js';
import type { CallOnTask } from '../../shared/task-facade.js';
import { taskIdNode, type MemoryObjectName, type NodeId, type TaskId } from '../../shared/types.js';
import type { ObjectCache } from '../vm/object-cache.js';
import type { TaskActor } from './task.js';

/** Runs NodeApi routine `method` on this node for task `target`. */
export type LocalRoutine = (method: keyof NodeApi, target: TaskId, args: readonly unknown[]) => unknown;

/**
 * task-port calls of `caller`. A name without a send right to a task's kernel port answers
 * MACH_SEND_INVALID_DEST, as a message to it would; memory the call released for good (the
 * routine's `released`, dropped on whichever node ran it) goes to its pagers through `cache`.
 */
export function onTaskPort(caller: TaskActor, cache: ObjectCache, local: LocalRoutine,
  callNode: (node: NodeId, method: keyof NodeApi, args: readonly unknown[]) => Promise<{ kr: number }>): CallOnTask<number> {
  return async (name, method, ...args) => {
    const target = caller.ipc.taskOfName(name);
    if (target === undefined) return { kr: MACH_SEND_INVALID_DEST } as never;
    const node = taskIdNode(target);
    const reply = node === cache.node
      ? await local(method, target, args) as { kr: number }
      : await callNode(node, method, [target, ...args]);
    const released = (reply as { released?: readonly MemoryObjectName[] }).released;
    if (released !== undefined && released.length > 0) cache.handOn(released);
    return reply as never;
  };
}
