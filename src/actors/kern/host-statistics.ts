/**
 * host_statistics for one node: what it holds now, counted from the structures that hold it
 * (the task table, each map, the shared port table, the default pager), so a leak anywhere
 * shows. The stress runs (src/cli/stress) compare it before and after a run.
 */
import type { NodeStatistics } from '../../shared/statistics.js';
import type { NodeId, TaskId } from '../../shared/types.js';
import { PortKind, type PortTable } from '../ipc/port-table.js';
import type { DefaultPager } from '../vm/default-pager.js';
import type { TaskActor } from './task.js';
import { globalNode } from './node-base.js';

export interface StatisticsSources {
  readonly node: NodeId;
  readonly nodes: number;
  readonly tasks: Iterable<TaskActor>;
  liveThreads(task: TaskId): number;
  readonly table: PortTable;
  readonly pager: DefaultPager;
  /** NodeIpc, whose `counters` (messages queued, senders blocked, senders woken) are read when it keeps them. */
  readonly ipc: object;
}

export function hostStatistics(from: StatisticsSources): NodeStatistics {
  let tasks = 0, threads = 0, regions = 0;
  for (const task of from.tasks) {
    tasks++;
    threads += from.liveThreads(task.id);
    regions += task.map.regionCount;
  }
  let ports = 0, portSets = 0, kernelPorts = 0;
  // A port located here may have had its receive right last taken on any node (it is on its
  // way here, or its right travels in a message): ask for each.
  for (let receiver = 0; receiver < from.nodes; receiver++) {
    for (const port of from.table.portsReceivedOn(receiver as NodeId, from.node)) {
      const kind = from.table.kind(port);
      if (kind === PortKind.PORT_SET) portSets++;
      else if (kind === PortKind.PORT || kind === PortKind.KERNEL_REPLY) ports++;
      else kernelPorts++;
    }
  }
  const pager = from.pager.info();
  const counters = (from.ipc as { counters?: unknown }).counters;
  return {
    node: globalNode(from.node), tasks, threads, ports, portSets, kernelPorts, regions,
    memoryObjects: pager.objects, bytes: pager.bytes,
    // The lead's NodeIpc.counters (issue 10): copied as plain numbers when present.
    ...(typeof counters === 'object' && counters !== null ? { ipc: plainNumbers(counters) } : {}),
  };
}

function plainNumbers(record: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(record)) if (typeof value === 'number') out[key] = value;
  return out;
}
