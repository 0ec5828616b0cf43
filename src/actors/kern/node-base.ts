/**
 * A node's index as the world sees it. In a cluster member (`norma node`) the process's nodes
 * are numbered from 0 inside it, and its first node has global index `nodeBase` (the host hands
 * it as workerData, NodeHost); what a node reports (task_info, thread_info, host_statistics,
 * pager info, a task's context.node) names the global node. 0 outside a cluster member.
 */
import { workerData } from 'node:worker_threads';
import type { NodeId } from '../../shared/types.js';

export const nodeBase = Number((workerData as { nodeBase?: unknown } | null)?.nodeBase ?? 0);

/** The global index of this process's node `node`. */
export function globalNode(node: NodeId): NodeId {
  return (node + nodeBase) as NodeId;
}
