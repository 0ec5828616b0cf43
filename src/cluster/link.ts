/**
 * What the cluster's parts need of the wire between processes: reliable, ordered, authenticated
 * delivery of structured-clone values (no SharedArrayBuffer: they cannot leave a process) to a
 * named service of another process, and word of a process that died. transport.ts gives it over
 * a NATS server; test/cluster/memory-link.ts gives it between kernels of one process, for tests.
 *
 * Processes are numbered: 0 is the process that booted the kernel, 1.. the ones that joined.
 * Order holds per (sender process, receiver process) pair, across services: a `post` to a
 * service is seen after every earlier `post` or `request` from the same process to the same one.
 */
import type { NodeApi, Reply } from '../shared/protocol.js';
import type { NodeId, PortId } from '../shared/types.js';
import type { Task } from '../task.js';
import type { TaskKernel } from '../mach.js';
import type { Thread } from '../thread.js';
import type { ClusterService, ProcessIndex } from './wire.js';

export type { ProcessIndex };

/**
 * The process-local kernel as the cluster's parts see it (src/kernel.ts's Kernel has this shape;
 * they name this interface, never Kernel itself, because kernel.ts boots the cluster and an
 * import back would be a cycle). Node indexes here are this process's own, 0 .. localNodes - 1.
 */
export interface LocalKernel extends TaskKernel<Task, Thread> {
  readonly localNodes: number;
  readonly bootstrapTask: Task;
  /** Port `port`'s queue limit, read from this process's port table without a node (so a frozen node does not hold it up). */
  queueLimit(port: PortId): number;
  /** Test hook: kills local node `node`'s worker as a crash would. */
  crashNode(node: number): Promise<void>;
  request<K extends keyof NodeApi>(node: NodeId, method: K, ...args: Parameters<NodeApi[K]>): Promise<Reply<K>>;
}

export interface ServiceHandlers {
  /** A one-way frame from `from`. */
  message?(from: ProcessIndex, payload: unknown): void;
  /** A request from `from`; what it resolves to is the answer (it must not reject: answer a kr). */
  request?(from: ProcessIndex, payload: unknown): Promise<unknown> | unknown;
}

export interface ClusterLink {
  /** This process's index. */
  readonly self: ProcessIndex;
  /** How many processes the cluster has (indexes 0 .. processes - 1). */
  readonly processes: number;
  /** One-way, reliable and ordered; a post to a process that is down is dropped. */
  post(to: ProcessIndex, service: ClusterService, payload: unknown): void;
  /**
   * Runs `service`'s request handler on process `to`. Resolves to its answer, or to
   * `{ kr: KERN_NODE_DOWN }` when `to` is or goes down before answering. Never hangs.
   */
  request(to: ProcessIndex, service: ClusterService, payload: unknown): Promise<unknown>;
  /** Installs the handlers of `service` on this process (once per service). */
  serve(service: ClusterService, handlers: ServiceHandlers): void;
  /** Called once per process that goes down, after the requests waiting on it were answered. */
  onPeerDown(handler: (proc: ProcessIndex) => void): void;
  isDown(proc: ProcessIndex): boolean;
}
