/**
 * The four task-creation calls as task code makes them (context.mach, for a thread or
 * task.execute code): the parent named by a send right to its kernel port in the caller's space,
 * the child answered as a send right to its kernel port in that space. The fork runs on the
 * parent's node (taskFork); a child on another node is built there from the image, and its
 * answer comes back to this node (ForkHandoff.forwardHere), not to the host.
 */
import { KERN_INVALID_ARGUMENT, KERN_NODE_DOWN } from '../../shared/constants.js';
import type { ForkMode, ForkReply, NodeApi } from '../../shared/protocol.js';
import type { ForkOnTask } from '../../shared/task-facade.js';
import { taskIdNode, type MemoryObjectName, type NodeId, type TaskId } from '../../shared/types.js';
import type { PortTable } from '../ipc/port-table.js';
import type { TaskActor } from './task.js';
import { sendRightName } from './syscall.js';

/** What the calls need of the node kernel and its links. */
export interface ForkCallsNode {
  readonly id: NodeId;
  readonly nodes: number;
  readonly table: PortTable;
  taskFork(parent: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId, ledgers: null): ForkReply;
  taskAdopt(image: NonNullable<ForkReply['image']>, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply>;
  imageRelease(image: NonNullable<ForkReply['image']>): unknown;
  teleportSettled(parent: TaskId, built: boolean): MemoryObjectName[];
  handOn(objects: readonly MemoryObjectName[]): void;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
  /** ForkHandoff.forwardHere, once the node's wiring has one. */
  forwardHere?: (reply: ForkReply) => Promise<ForkReply> | undefined;
}

/**
 * The fork calls of `caller`. Codes as the host face answers them: KERN_INVALID_ARGUMENT for a
 * name that is no send right to a live task's kernel port (a dead parent's right is a dead name),
 * a flag that is not a boolean, or a node outside [0, nodes); then what taskFork answers.
 * Two refusals, KERN_INVALID_ARGUMENT (README, "The context"): teleporting the caller's own
 * task to another node (Mach would terminate the caller, whose call could never return), and
 * teleporting a task on another node to a third (its parent is settled on its own node, which
 * only a host call or a fork made there reaches).
 */
export function forkOnTaskPort(caller: TaskActor, node: ForkCallsNode): ForkOnTask {
  return async (name, mode, inheritMemory, childNode) => {
    const parent = caller.ipc.taskOfName(name);
    if (parent === undefined || typeof inheritMemory !== 'boolean') return { kr: KERN_INVALID_ARGUMENT };
    const parentNode = taskIdNode(parent);
    const target = (childNode ?? parentNode) as NodeId;
    if (!Number.isInteger(target) || target < 0 || target >= node.nodes) return { kr: KERN_INVALID_ARGUMENT };
    if (mode === 'teleport' && target !== parentNode && (parent === caller.id || parentNode !== node.id)) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const forked = parentNode === node.id
      ? node.taskFork(parent, mode, inheritMemory, target, null)
      : await node.callNode(parentNode, 'taskFork', [parent, mode, inheritMemory, target, null]) as ForkReply;
    const reply = forked.image === undefined ? forked : await adopt(node, forked);
    if (reply.released !== undefined && reply.released.length > 0) node.handOn(reply.released);
    if (reply.childPort === undefined) return { kr: reply.kr };
    return { kr: reply.kr, child_task: sendRightName(caller, node.table, reply.childPort) };
  };
}

/** The child built from `forked`'s image on its node: here, or there with the answer coming back here. */
async function adopt(node: ForkCallsNode, forked: ForkReply): Promise<ForkReply> {
  const image = forked.image!;
  if (forked.childNode === node.id) return node.taskAdopt(image, forked.released ?? []);
  const answered = node.forwardHere?.(forked);
  if (answered !== undefined) return answered;
  // No way to that node: the image's references go, and a teleport's parent comes back.
  node.imageRelease(image);
  if (forked.teleported !== undefined) node.teleportSettled(forked.teleported, false);
  return { kr: KERN_NODE_DOWN };
}
