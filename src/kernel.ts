/**
 * The kernel: boots the nodes, owns the bootstrap task and the root ledgers, routes every call
 * to the node that holds its task, and orchestrates task creation across nodes.
 */
import { availableParallelism } from 'node:os';
import { Ledger } from './actors/kern/ledger.js';
import { MapHoldings, REF_TABLE_BYTES } from './actors/vm/memory-object.js';
import { PortTable } from './actors/ipc/port-table.js';
import { createMach, type Mach, type TaskKernel } from './mach.js';
import {
  DEFAULT_PAGE_SIZE, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_SUCCESS,
} from './shared/constants.js';
import { KernError } from './shared/errors.js';
import type { ForkMode, NodeApi, PagerInfo, Reply, TaskLedgers } from './shared/protocol.js';
import type { NodeStatistics } from './shared/statistics.js';
import { MAX_NODES, taskIdNode, type NodeId, type SecurityToken, type MemoryObjectName } from './shared/types.js';
import { Task } from './task.js';
import { Thread } from './thread.js';
import type { ThreadId } from './shared/thread-types.js';
import { DEFAULT_BUSY_WARNING_MS, NodeHost } from './workers/node-host.js';
import type { NodeActivityReport } from './shared/node-activity.js';
import { ClusterNode, recruit, type Recruited } from './cluster/cluster.js';
import type { ClusterOptions, ClusterProcessStatistics } from './cluster/options.js';
import type { LocalKernel } from './cluster/link.js';

export interface BootOptions {
  /** How many nodes (worker threads) to start. Default: os.availableParallelism(). */
  readonly nodes?: number;
  /** The virtual page size, a power of two from 512 to 1 MiB. Default 4096. */
  readonly pageSize?: number;
  /** Limit in bytes of the bootstrap task's paged ledger. Default: unlimited. */
  readonly memoryLimit?: number;
  /**
   * How long (ms) a call may wait on a node that task code holds (a synchronous loop) before a
   * process warning with code NORMA_NODE_BUSY names the node, the task and how long; once per
   * stretch. Default 5000; Infinity for never. See Kernel.nodeActivity().
   */
  readonly busyWarningMs?: number;
  /**
   * Spread the nodes over several OS processes joined through a NATS server (README: "A cluster"):
   * this process hosts the first share, processes it spawns (`spawn`) or that run `norma node`
   * elsewhere (`join`) the others. Node indexes stay global.
   */
  readonly cluster?: ClusterOptions;
  /**
   * @internal A cluster member's kernel (`norma node`): the global index of its first node, so
   * task code there sees global node indexes. Default 0.
   */
  readonly nodeBase?: number;
}

const BOOTSTRAP_TOKEN: SecurityToken = [0, 0];

/** The host calls kernel.mach adds to the task and thread calls. */
export interface HostMach {
  /**
   * host_statistics for node `node` (norma's flavor: one node's tasks, threads, ports, regions
   * and memory, NodeStatistics). KERN_INVALID_ARGUMENT for no such node; KERN_NODE_DOWN.
   */
  host_statistics(node: number): Promise<{ kr: number; statistics?: NodeStatistics }>;
}

export class Kernel implements TaskKernel<Task, Thread> {
  readonly pageSize: number;
  readonly mach: Mach<Task, Thread> & HostMach;
  readonly #hosts: NodeHost[];
  readonly #rootLedgers: readonly [Ledger, Ledger];
  #bootstrapTask: Task | undefined;
  #nextLedger = 2;
  /** The one stop every shutdown() call awaits. */
  #stopped: Promise<void> | undefined;
  /** In a cluster: this process's part, and what recruiting started. */
  #cluster: ClusterNode | undefined;
  #recruited: Recruited | undefined;
  /** A host view of this process's port table: it reads, and allocates nothing. */
  #ports!: PortTable;

  private constructor(hosts: NodeHost[], pageSize: number, memoryLimit: number) {
    this.#hosts = hosts;
    this.pageSize = pageSize;
    this.#rootLedgers = [Ledger.create(0, Infinity), Ledger.create(1, memoryLimit)];
    this.mach = Object.assign(createMach(this), {
      host_statistics: async (node: number) => {
        if (!Number.isInteger(node) || node < 0 || node >= this.nodes) return { kr: KERN_INVALID_ARGUMENT };
        const reply = await this.request(node as NodeId, 'hostStatistics');
        return 'tasks' in reply ? { kr: KERN_SUCCESS, statistics: reply } : { kr: (reply as { kr: number }).kr };
      },
    });
  }

  /**
   * Starts the nodes and the bootstrap task. Rejects with RangeError for bad options, or with
   * KernError(KERN_NODE_DOWN) if a node fails to start (the others are stopped again).
   */
  static async boot(options: BootOptions = {}): Promise<Kernel> {
    const nodes = options.nodes ?? availableParallelism();
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    const memoryLimit = options.memoryLimit ?? Infinity;
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
      throw new RangeError(`options.nodes must be an integer from 1 to ${MAX_NODES}`);
    }
    if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 1 << 20 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError('options.pageSize must be a power of two from 512 to 1048576');
    }
    if (memoryLimit !== Infinity && (!Number.isSafeInteger(memoryLimit) || memoryLimit < 0)) {
      throw new RangeError('options.memoryLimit must be a non-negative integer or Infinity');
    }
    const busyWarningMs = options.busyWarningMs ?? DEFAULT_BUSY_WARNING_MS;
    if (busyWarningMs !== Infinity && !(Number.isFinite(busyWarningMs) && busyWarningMs > 0)) {
      throw new RangeError('options.busyWarningMs must be a positive number or Infinity');
    }
    const nodeBase = options.nodeBase ?? 0;
    if (!Number.isInteger(nodeBase) || nodeBase < 0 || nodeBase + nodes > MAX_NODES) {
      throw new RangeError(`options.nodeBase must be an integer from 0 to ${MAX_NODES} - nodes`);
    }
    const recruited = options.cluster === undefined ? undefined : await recruit(options.cluster, nodes, pageSize);
    const localNodes = recruited?.layout.shares[0] ?? nodes;
    const portTable = PortTable.create(localNodes);
    let hosts: NodeHost[];
    try {
      const refTables = Array.from({ length: localNodes }, () => new SharedArrayBuffer(REF_TABLE_BYTES));
      const holdings = Array.from({ length: localNodes }, () => MapHoldings.create());
      const messageHoldings = Array.from({ length: localNodes }, () => MapHoldings.create());
      hosts = await NodeHost.startAll(localNodes, {
        pageSize, refTables, portTable, holdings, messageHoldings,
      }, nodeBase);
    } catch (error) {
      await recruited?.close();
      throw error;
    }
    for (const host of hosts) host.warnWhenBusy(busyWarningMs);
    const kernel = new Kernel(hosts, pageSize, memoryLimit);
    kernel.#recruited = recruited;
    kernel.#ports = new PortTable(portTable, 0 as NodeId);
    try {
      const ledgers = kernel.#rootLedgers.map((ledger) => ledger.ref) as unknown as TaskLedgers;
      const reply = await kernel.request(0 as NodeId, 'taskBootstrap', BOOTSTRAP_TOKEN, ledgers);
      if (reply.kr !== KERN_SUCCESS) throw new KernError(reply.kr, 'bootstrap task');
      kernel.#bootstrapTask = new Task(kernel, reply.task!, 0 as NodeId);
      if (recruited !== undefined) {
        kernel.#cluster = await ClusterNode.start(async () => kernel.asLocalKernel(), recruited.link, recruited.layout);
        await kernel.#cluster.ready();
      }
    } catch (error) {
      await kernel.shutdown();
      throw error;
    }
    return kernel;
  }

  /** How many nodes this kernel runs (in a cluster: in every process). */
  get nodes(): number { return this.#cluster?.layout.nodes ?? this.#recruited?.layout.nodes ?? this.#hosts.length; }

  /** How many of them run in this process (all of them, outside a cluster). */
  get localNodes(): number { return this.#hosts.length; }

  /** The first task, on node 0, with an empty address space. */
  get bootstrapTask(): Task { return this.#bootstrapTask!; }

  /** The bootstrap task's [wired, paged] ledgers, which children use unless given others. */
  get rootLedgers(): readonly [Ledger, Ledger] { return this.#rootLedgers; }

  /** A new ledger limiting to `limit` bytes the memory of the tasks created with it. */
  createLedger(limit: number): Ledger {
    if (limit !== Infinity && (!Number.isSafeInteger(limit) || limit < 0)) {
      throw new RangeError('limit must be a non-negative integer or Infinity');
    }
    return Ledger.create(this.#nextLedger++, limit);
  }

  /** Each node's default pager: how many memory objects it owns, and their bytes. */
  async pagerInfo(): Promise<PagerInfo[]> {
    return Promise.all(this.#allNodes().map(async (node) => {
      const info = await this.request(node, 'pagerInfo');
      return 'objects' in info ? info : { node, objects: 0, bytes: 0, down: true };
    }));
  }

  /** Every node's index, wherever it runs. */
  #allNodes(): NodeId[] { return Array.from({ length: this.nodes }, (_, node) => node as NodeId); }

  /** host_statistics of every node (NodeStatistics); a node that is down answers `down: true` and zeros. */
  async statistics(): Promise<NodeStatistics[]> {
    return Promise.all(this.#allNodes().map(async (node) => {
      const { kr, statistics } = await this.mach.host_statistics(node);
      return statistics ?? {
        node, tasks: 0, threads: 0, ports: 0, portSets: 0, kernelPorts: 0, regions: 0, memoryObjects: 0, bytes: 0,
        down: kr === KERN_NODE_DOWN,
      };
    }));
  }

  /**
   * In a cluster, each process's figures: the nodes it hosts, whether it is down, its NATS link
   * (frames, rejected forgeries, gaps, retransmits, reconnects), its gateway and remote tasks.
   * Undefined outside a cluster.
   */
  async clusterStatistics(): Promise<ClusterProcessStatistics[] | undefined> {
    return this.#cluster?.statistics();
  }

  /**
   * What each node runs now, read from shared memory, so it answers even while a node is held by
   * task code: the task whose code runs and since when (Date.now() ms), and how many calls wait.
   */
  nodeActivity(): NodeActivityReport[] {
    // A node in another process has no activity word here: it reports nothing pending.
    return this.#allNodes().map((node) => this.#hosts[node]?.activity() ?? { node, pending: 0 });
  }

  /** True when `value` is a task handle of this kernel. */
  owns(value: unknown): value is Task {
    return value instanceof Task && value.kernel === this;
  }

  /** True when `value` is a thread handle of this kernel. */
  ownsThread(value: unknown): value is Thread {
    return value instanceof Thread && value.ownedBy(this);
  }

  /** The handle of thread `id` of `task`. */
  thread(task: Task, id: ThreadId): Thread { return new Thread(this as never, task, id); }

  #host(node: NodeId): NodeHost {
    const host = this.#hosts[node];
    if (host === undefined) throw new KernError(KERN_INVALID_ARGUMENT, `no node ${node}`);
    return host;
  }

  /**
   * Runs a routine on `node` (the routing side task handles use). A node that is down answers
   * `{ kr: KERN_NODE_DOWN }`; arguments that cannot cross to a node answer KERN_INVALID_ARGUMENT;
   * memory objects the routine released for good are handed to their home pagers first.
   */
  async request<K extends keyof NodeApi>(node: NodeId, method: K, ...args: Parameters<NodeApi[K]>): Promise<Reply<K>> {
    if (this.#cluster !== undefined && Number.isInteger(node) && node >= 0 && node < this.nodes) {
      return this.#cluster.request(node, method, args);
    }
    return this.#request(node, method, args);
  }

  /**
   * @internal This process's own kernel as the cluster's parts drive it (src/cluster): its
   * nodes only, no routing (their calls on memory homed elsewhere are theirs to route).
   */
  asLocalKernel(): LocalKernel & { shutdown(): Promise<void> } {
    const kernel = this;
    const view: LocalKernel & { shutdown(): Promise<void> } = {
      queueLimit: (port) => kernel.#ports.qlimit(port),
      crashNode: (node) => kernel.#host(node as NodeId).crash(),
      shutdown: () => kernel.shutdown(),
      localNodes: this.#hosts.length,
      pageSize: this.pageSize,
      get bootstrapTask() { return kernel.bootstrapTask; },
      get nodes() { return kernel.#hosts.length; },
      mach: undefined as never,
      owns: (value: unknown): value is Task => value instanceof Task && (value.kernel === kernel || value.kernel === view),
      ownsThread: (value: unknown): value is Thread => value instanceof Thread && (value.ownedBy(kernel) || value.ownedBy(view)),
      thread: (task, id) => new Thread(view as never, task, id),
      request: (node, method, ...args) => kernel.#request(node, method, args),
      fork: async (parent, mode, inheritMemory, childNode, ledgers) => {
        const reply = await kernel.#forkLocal(view.owns(parent) ? parent : undefined, mode, inheritMemory, childNode, ledgers);
        return reply.child === undefined ? { kr: reply.kr } : { kr: reply.kr, child: new Task(view, reply.child.id, reply.child.node) };
      },
    };
    (view as { mach: LocalKernel['mach'] }).mach = createMach(view) as LocalKernel['mach'];
    return view;
  }

  async #request<K extends keyof NodeApi>(node: NodeId, method: K, args: Parameters<NodeApi[K]>,
    alsoOn?: NodeId): Promise<Reply<K>> {
    let reply: Reply<K>;
    try {
      reply = await this.#host(node).call(method, args, alsoOn === undefined ? undefined : this.#host(alsoOn));
    } catch (error) {
      if (error instanceof KernError) return { kr: error.kr } as Reply<K>;
      if (error instanceof DOMException && error.name === 'DataCloneError') return { kr: KERN_INVALID_ARGUMENT } as Reply<K>;
      throw error;
    }
    const released = (reply as { released?: readonly MemoryObjectName[] }).released;
    if (released !== undefined && released.length > 0) await this.#terminateObjects(released);
    return reply;
  }

  /** Hands objects whose last reference is gone to their home pagers. */
  async #terminateObjects(objects: readonly MemoryObjectName[]): Promise<void> {
    const byHome = new Map<NodeId, MemoryObjectName[]>();
    for (const object of objects) byHome.set(object.home, [...(byHome.get(object.home) ?? []), object]);
    await Promise.all([...byHome].map(([home, names]) => this.request(home, 'pagerRelease', names)));
  }

  /**
   * The four task-creation calls (TaskRouter.fork). The parent's node captures the child's address
   * space in one step; a child on another node is built there from that image, sent node to
   * node, and that node answers (so a crash of either fails the call). A teleport's parent is
   * terminated only once its child exists, and the answer comes through the parent's node
   * after that. So when the child's node dies, KERN_NODE_DOWN says the task did not move if the
   * parent still answers (alive and unchanged, its image released), and that it moved and died
   * with that node if the parent answers KERN_INVALID_ARGUMENT. A dying parent's node takes the
   * parent with it, and a child built meanwhile, whose handle never reached the caller, lives on.
   * Returns KERN_INVALID_ARGUMENT for a parent that is not a live task of this kernel or a
   * child node that is not an integer in [0, nodes); KERN_RESOURCE_SHORTAGE when the port table
   * has no slot for the child's kernel port (nothing is created); otherwise what the nodes answer.
   */
  async fork(parent: unknown, mode: ForkMode, inheritMemory: unknown, childNode: unknown,
    ledgers: TaskLedgers | null): Promise<{ kr: number; child?: Task }> {
    if (!this.owns(parent) || typeof inheritMemory !== 'boolean' || !Number.isInteger(childNode) ||
        (childNode as number) < 0 || (childNode as number) >= this.nodes) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const target = childNode as NodeId;
    const cluster = this.#cluster;
    if (cluster !== undefined && cluster.isLocal(parent.node) && cluster.hasRemoteMemory(parent.id)) {
      if (!cluster.isLocal(target)) return { kr: cluster.refuseFork().kr };
      const { kr, child } = await cluster.forkHere(parent.node, parent.id, mode, inheritMemory, target, ledgers);
      return child === undefined ? { kr } : { kr, child: new Task(this, child, target) };
    }
    if (cluster !== undefined && !(cluster.isLocal(parent.node) && cluster.isLocal(target))) {
      // A ledger is a SharedArrayBuffer of this process: a child elsewhere counts against its own process's.
      if (ledgers !== null && ledgers !== undefined) return { kr: KERN_INVALID_ARGUMENT };
      const { kr, child } = await cluster.fork(parent.node, parent.id, mode, inheritMemory, target);
      return child === undefined ? { kr } : { kr, child: new Task(this, child, target) };
    }
    return this.#forkLocal(parent, mode, inheritMemory, target, ledgers);
  }

  /** A fork whose parent and child both live in this process. */
  async #forkLocal(parent: Task | undefined, mode: ForkMode, inheritMemory: unknown, childNode: unknown,
    ledgers: TaskLedgers | null): Promise<{ kr: number; child?: Task }> {
    if (parent === undefined || typeof inheritMemory !== 'boolean' || !Number.isInteger(childNode) ||
        (childNode as number) < 0 || (childNode as number) >= this.#hosts.length) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const target = childNode as NodeId;
    const reply = await this.#request(parent.node, 'taskFork', [parent.id, mode, inheritMemory, target, ledgers],
      target === parent.node ? undefined : target);
    return reply.child === undefined ? { kr: reply.kr } : { kr: reply.kr, child: this.#task(reply.child) };
  }

  #task(id: number): Task {
    if (id === this.#bootstrapTask?.id) return this.#bootstrapTask;
    return new Task(this, id as Task['id'], taskIdNode(id as Task['id']));
  }

  /**
   * Stops every node. Calls still in flight fail with KERN_NODE_DOWN. Every call, including one
   * made while an earlier one runs, resolves once all the workers are gone.
   */
  shutdown(): Promise<void> {
    if (this.#stopped === undefined) {
      this.#stopped = (async () => {
        await this.#cluster?.stop();
        await this.#recruited?.close();
        await Promise.all(this.#hosts.map((host) => host.stop()));
      })();
    }
    return this.#stopped;
  }

  /** Test hook: kills one node's worker abruptly, as a crash would (in a cluster, wherever it runs). */
  async crashNode(node: number): Promise<void> {
    if (this.#cluster !== undefined && Number.isInteger(node) && node >= this.#hosts.length && node < this.nodes) {
      await this.#cluster.crash(node);
      return;
    }
    await this.#host(node as NodeId).crash();
  }
}

