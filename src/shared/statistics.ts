/**
 * What host_statistics answers for one node (NodeApi.hostStatistics, kernel.statistics(),
 * kernel.mach.host_statistics). Counted by actors/kern/host-statistics.ts.
 */
import type { NodeId } from './types.js';

/**
 * host_statistics for one node (NodeApi.hostStatistics): what the node holds now. A run that
 * cleaned up after itself leaves each figure where it found it (the stress runs check so).
 */
export interface NodeStatistics {
  readonly node: NodeId;
  /** Live tasks here (a teleport's parent awaiting its child included). */
  readonly tasks: number;
  /** Threads of those tasks that have not ended. */
  readonly threads: number;
  /** Live ports whose queue is here (receive rights held here or in transit from here), kernel ports excluded. */
  readonly ports: number;
  /** Live port sets here. */
  readonly portSets: number;
  /** Task, thread and host kernel ports here. */
  readonly kernelPorts: number;
  /** Regions mapped by the tasks here. */
  readonly regions: number;
  /** Memory objects this node's default pager holds, and their bytes. */
  readonly memoryObjects: number;
  readonly bytes: number;
  /** The node's IPC counters (messages queued, senders blocked, senders woken) where it keeps them. */
  readonly ipc?: Readonly<Record<string, number>>;
  /** True when the node is down: the other figures are unknown (0 here). */
  readonly down?: boolean;
}
