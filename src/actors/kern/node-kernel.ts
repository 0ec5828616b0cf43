/**
 * The kernel of one node: its task table, and the NodeApi routines the host calls, each handed
 * to the subsystem that does the work (task-fork.ts, vm/object-cache.ts, the task's map and IPC
 * space, port-routines.ts, task-code.ts). Task creation draws the parent's map here in one
 * synchronous step, so concurrent callers each see a consistent snapshot: a node runs one
 * routine at a time.
 */
import { KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, KERN_TERMINATED, TASK_HOST_PORT } from '../../shared/constants.js';
import type { ForkMode, ForkReply, InheritedPorts, IpcTraffic, KrReply, NodeApi, NodeStartup, NodeToNode, ReleasingReply, TaskBasicInfo, TaskExit, TaskImage, TaskLedgers } from '../../shared/protocol.js';
import { isSecurityToken, makeTaskId, type MemoryObjectName, type NodeId, type SecurityToken, type TaskId } from '../../shared/types.js';
import { NodeIpc } from '../ipc/ipc-node.js';
import { TaskIpc } from '../ipc/space.js';
import { PortKind, PortTable } from '../ipc/port-table.js';
import { ObjectCache } from '../vm/object-cache.js';
import { oolMemory } from '../vm/ool.js';
import { VmMap } from '../vm/vm-map.js';
import { isLedgerRef } from './ledger.js';
import { TaskActor } from './task.js';
import { executeTask, taskContext, type CodeReply } from './task-code.js';
import { TaskFork } from './task-fork.js';
import { ThreadRoutines } from './thread-routines.js';
import type { ThreadCallsOfTask } from './syscall.js';
import { onTaskPort } from './task-port.js';
import { serveKobject } from './kobject.js';
import { forkOnTaskPort, type ForkCallsNode } from './fork-calls.js';
import { hostStatistics } from './host-statistics.js';
import type { NodeStatistics } from '../../shared/statistics.js';

const FORK_MODES: readonly ForkMode[] = ['create', 'clone', 'teleport'];

/** How a node reaches the others: one-way traffic, and calls answered by their NodeApi. */
export interface NodeLinks {
  post(node: NodeId, message: NodeToNode): void;
  /** Tells another node a queue place may be free for its blocked senders (its doorbell). */
  wakeSenders?(node: NodeId): void;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
}

export class NodeKernel extends ThreadRoutines implements NodeApi {
  readonly id: NodeId;
  readonly nodes: number;
  readonly pageSize: number;
  readonly #tasks = new Map<TaskId, TaskActor>();
  #nextTask = 1;
  protected readonly nodeIpc: NodeIpc;
  protected readonly cache: ObjectCache;
  readonly #fork: TaskFork;
  readonly #callNode: NodeLinks['callNode'];
  /** Nodes this node has seen go down (nodeDown ran for them). */
  readonly #down = new Set<NodeId>();
  /** Parents of teleports to another node, out of the task table until their child is built or not. */
  readonly #teleporting = new Map<TaskId, TaskActor>();
  /** Who waits for a task's end (taskExited), and how tasks ended by an exception ended. */
  readonly #exitWaiters = new Map<TaskId, Array<(exit: TaskExit) => void>>();
  readonly #exits = new Map<TaskId, TaskExit>();
  /** ForkHandoff.forwardHere, set by the node's wiring: where task code's cross-node forks go. */
  forwardHere?: (reply: ForkReply) => Promise<ForkReply> | undefined;
  /** What task code's fork calls (fork-calls.ts) need of this node. */
  get #forkCalls(): ForkCallsNode {
    return {
      id: this.id, nodes: this.nodes, table: this.nodeIpc.table, callNode: this.#callNode,
      taskFork: (...args) => this.taskFork(...args), taskAdopt: (...args) => this.taskAdopt(...args),
      imageRelease: (image) => this.imageRelease(image), handOn: (objects) => this.handOn(objects),
      teleportSettled: (...args) => this.teleportSettled(...args), forwardHere: (reply) => this.forwardHere?.(reply),
    };
  }

  /**
   * `links` reach the other nodes directly (node-main's peer channels). Without `holdings`
   * (single-node tests) this node's holdings are recorded where no one reads them.
   */
  constructor(startup: Pick<NodeStartup, 'node' | 'nodes' | 'pageSize' | 'refTables' | 'portTable'> &
    Partial<Pick<NodeStartup, 'holdings' | 'messageHoldings'>>,
  links: NodeLinks = { post: () => {}, callNode: async () => ({ kr: KERN_NODE_DOWN }) }) {
    super();
    this.id = startup.node;
    this.nodes = startup.nodes;
    this.pageSize = startup.pageSize;
    const post = links.post;
    this.#callNode = links.callNode;
    this.cache = new ObjectCache(this.id, startup.refTables, startup.holdings ?? [], startup.messageHoldings ?? [], post);
    const wakeSenders = (node: NodeId): void => links.wakeSenders?.(node);
    const ipc = this.nodeIpc = new NodeIpc(this.id, new PortTable(startup.portTable, this.id, wakeSenders), {
      post: (node, traffic) => {
        if (this.#down.has(node)) {
          // After the sweep only a queue shipped to a receive right taken there just before
          // the death can still be headed there (NodeIpc.reclaim), or a message caught in it.
          if (traffic.op === 'port-state') ipc.reclaim(traffic.state);
          else if (traffic.op === 'kmsg') ipc.destroyMessage(traffic.kmsg);
          return;
        }
        ipc.departing(node, traffic);
        post(node, { op: 'ipc', traffic });
      },
      releaseObject: (object) => this.cache.release([object]),
      holdRegions: (regions, delta) => { for (const region of regions) this.cache.holdInMessage(region.object, delta); },
      portDied: (task, port) => (this.#tasks.get(task) ?? this.#teleporting.get(task))?.ipc.portDied(port),
    });
    this.#fork = new TaskFork({
      cache: this.cache, ipc, callNode: links.callNode,
      newTask: (token, ledgers, ports) => this.#newTask(token, ledgers, ports),
    });
    ipc.kobjectServer = (kmsg) => serveKobject(ipc, this, kmsg);
  }

  /** Another node said a queue place may be free for a sender blocked here. */
  placesFreed(): void { this.nodeIpc.blocked.recheck(); }

  /** IPC traffic from another node. */
  receiveTraffic(traffic: IpcTraffic): void {
    if (traffic.op === 'kmsg') this.nodeIpc.countArrival(traffic.kmsg);
    this.nodeIpc.receiveTraffic(traffic);
  }

  /**
   * A new task, or undefined when the port table has no slot for its kernel port (the caller
   * answers KERN_RESOURCE_SHORTAGE). Nothing else is taken before the port, so nothing leaks.
   */
  #newTask(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts | null): TaskActor | undefined {
    let task: TaskActor;
    try {
      task = new TaskActor(makeTaskId(this.id, this.#nextTask++), this.id,
        new VmMap(this.pageSize, undefined, this.cache.hooks), token, ledgers,
        (actor) => new TaskIpc(this.nodeIpc, actor.id, oolMemory(actor.map, actor.pagedLedger, this.cache), ports));
    } catch (error) {
      // TaskIpc throws RangeError('port table full') when its kernel port cannot be made.
      if (error instanceof RangeError) return undefined;
      throw error;
    }
    this.#tasks.set(task.id, task);
    return task;
  }

  protected taskOf(id: TaskId): TaskActor | undefined { return this.#tasks.get(id); }
  protected spaceOf(id: TaskId): TaskIpc | undefined { return this.#tasks.get(id)?.ipc; }

  /**
   * The first task, with a send right to the host port (made here) as its TASK_HOST_PORT.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for a malformed token or ledger pair.
   */
  taskBootstrap(token: SecurityToken, ledgers: TaskLedgers): { kr: number; task?: TaskId } {
    if (!isSecurityToken(token) || !isLedgerPair(ledgers)) return { kr: KERN_INVALID_ARGUMENT };
    const host = this.nodeIpc.createPort(PortKind.HOST);
    if (host === undefined) return { kr: KERN_RESOURCE_SHORTAGE };
    // Held by no node until the task's TaskIpc takes it, as an inherited right.
    this.nodeIpc.table.addSendRight(host, false);
    const task = this.#newTask(token, ledgers, { special: [[TASK_HOST_PORT, host]], registered: [null, null, null] });
    if (task === undefined) {
      this.nodeIpc.destroyPort(host);
      return { kr: KERN_RESOURCE_SHORTAGE };
    }
    return { kr: KERN_SUCCESS, task: task.id };
  }

  /**
   * task_create / norma_task_create / norma_task_clone / norma_task_teleport, parent half.
   * Conditions: runs on the parent's node. With `childNode` here, the child is built here from
   * the parent's map; otherwise the reply carries a task image for `childNode` to adopt, holding
   * one reference per distinct shared object and the private copies made for COPY regions.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown or terminated parent, a bad
   * mode, flag, node or ledger pair; KERN_RESOURCE_SHORTAGE when the copies exceed the child's
   * paged ledger or memory. Teleport onto the parent's own node returns the parent unchanged.
   */
  taskFork(parentId: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId,
    ledgers: TaskLedgers | null): ForkReply {
    const parent = this.#tasks.get(parentId);
    if (parent === undefined || !FORK_MODES.includes(mode) || typeof inheritMemory !== 'boolean' ||
        !Number.isInteger(childNode) || childNode < 0 || childNode >= this.nodes ||
        (ledgers !== null && !isLedgerPair(ledgers))) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    if (mode === 'teleport' && childNode === this.id) return { kr: KERN_SUCCESS, child: parent.id, childPort: parent.ipc.taskPort };
    if (childNode === this.id) return this.#fork.here(parent, mode, inheritMemory, ledgers ?? parent.ledgers);
    const captured = this.#fork.capture(parent, mode, inheritMemory, ledgers ?? parent.ledgers, childNode);
    if (captured.image === undefined) return { kr: captured.kr };
    if (mode !== 'teleport') return { kr: KERN_SUCCESS, image: captured.image, released: [], childNode };
    // Calls naming the parent answer KERN_INVALID_ARGUMENT from now on, as they will once it
    // is gone; it is terminated only when its child exists (teleportSettled), so a child's
    // node that dies first leaves it alive and unchanged.
    this.#tasks.delete(parent.id);
    this.#teleporting.set(parent.id, parent);
    return { kr: KERN_SUCCESS, image: captured.image, released: [], childNode, teleported: parent.id };
  }

  /**
   * The teleport of `parent` to another node is decided: with `built`, its child exists and the
   * parent is terminated (returns the objects released for good that are homed elsewhere, for
   * the host to hand on); otherwise the child never will and the parent is back, unchanged.
   * Conditions: runs on the parent's node, once per teleport (later calls do nothing).
   */
  teleportSettled(parent: TaskId, built: boolean): MemoryObjectName[] {
    const task = this.#teleporting.get(parent);
    if (task === undefined) return [];
    this.#teleporting.delete(parent);
    if (built) return this.#terminate(task);
    this.#tasks.set(parent, task);
    return [];
  }

  /** norma_task_* child half: builds the child from an image captured on the parent's node (TaskFork.adopt). */
  taskAdopt(image: TaskImage, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply> {
    return this.#fork.adopt(image, released);
  }

  /** Drops the references a task image holds (its child will never be built); freed objects go to their pagers now. */
  imageRelease(image: TaskImage): ReleasingReply {
    this.#fork.release(image);
    return { kr: KERN_SUCCESS, released: [] };
  }

  /** Objects whose last reference went elsewhere, to their home pagers (ObjectCache.handOn). */
  handOn(objects: readonly MemoryObjectName[]): void { this.cache.handOn(objects); }

  #terminate(task: TaskActor, exit: TaskExit = { kr: KERN_TERMINATED }): MemoryObjectName[] {
    this.#tasks.delete(task.id);
    if (exit.kr !== KERN_TERMINATED) this.#exits.set(task.id, exit);
    for (const waiter of this.#exitWaiters.get(task.id)?.splice(0) ?? []) waiter(exit);
    this.#exitWaiters.delete(task.id);
    this.endThreads(task.id);
    const released: MemoryObjectName[] = [];
    this.cache.release(task.terminate(), released);
    return released;
  }

  /**
   * task_terminate: the task is gone; its memory objects are freed once no task maps them.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown or already terminated task.
   */
  taskTerminate(id: TaskId): ReleasingReply {
    const task = this.taskOf(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, released: [] };
    return { kr: KERN_SUCCESS, released: this.#terminate(task) };
  }

  /** An unhandled exception ends the task (exception.ts): its memory goes as for task_terminate. */
  protected exceptionExit(task: TaskActor, exit: TaskExit): void {
    if (this.#tasks.get(task.id) !== task) return;
    this.cache.handOn(this.#terminate(task, exit));
  }

  /**
   * Settles when task `id` ends: KERN_FAILURE with the exception no handler took (kept for
   * later callers too), else KERN_TERMINATED (also for a task that is not, or no longer, here).
   */
  taskExited(id: TaskId): Promise<TaskExit> {
    const kept = this.#exits.get(id);
    if (kept !== undefined || this.#tasks.get(id) === undefined) return Promise.resolve(kept ?? { kr: KERN_TERMINATED });
    let waiters = this.#exitWaiters.get(id);
    if (waiters === undefined) this.#exitWaiters.set(id, waiters = []);
    return new Promise((resolve) => waiters.push(resolve));
  }

  /** host_statistics: what this node holds now (host-statistics.ts). */
  hostStatistics(): NodeStatistics {
    return hostStatistics({
      node: this.id, nodes: this.nodes, tasks: [...this.#tasks.values(), ...this.#teleporting.values()],
      liveThreads: (task) => this.liveThreads(task), table: this.nodeIpc.table, pager: this.cache.pager, ipc: this.nodeIpc,
    });
  }

  taskSuspend(id: TaskId): KrReply { return { kr: this.taskOf(id)?.suspend() ?? KERN_INVALID_ARGUMENT }; }
  taskResume(id: TaskId): KrReply { return { kr: this.taskOf(id)?.resume() ?? KERN_INVALID_ARGUMENT }; }

  taskInfo(id: TaskId): { kr: number; info?: TaskBasicInfo } {
    const task = this.taskOf(id);
    return task === undefined ? { kr: KERN_INVALID_ARGUMENT }
      : { kr: KERN_SUCCESS, info: { ...task.info(), threadCount: this.liveThreads(id) } };
  }

  taskSetSecurityToken(id: TaskId, token: SecurityToken): KrReply {
    const task = this.taskOf(id);
    if (task === undefined || !isSecurityToken(token)) return { kr: KERN_INVALID_ARGUMENT };
    task.setToken(token);
    return { kr: KERN_SUCCESS };
  }

  /** Runs task code in task `id` (task-code.ts executeTask), its context wired to this node's routines. */
  taskExecute(id: TaskId, moduleUrl: string, exportName: string, args: readonly unknown[]): Promise<CodeReply> {
    return executeTask(this.taskOf(id), id, this.id, moduleUrl, exportName, args, (task) => {
      const { call, onTask, fork } = this.threadCalls(task);
      return taskContext(task, this.pageSize, call, onTask, fork);
    });
  }

  protected threadCalls(task: TaskActor): ThreadCallsOfTask {
    const local = (method: keyof NodeApi, target: TaskId, routineArgs: readonly unknown[]) =>
      (this[method] as (...routineArgs: unknown[]) => unknown)(target, ...routineArgs);
    return {
      call: (method, callArgs) => local(method, task.id, callArgs),
      onTask: onTaskPort(task, this.cache, local, this.#callNode),
      fork: forkOnTaskPort(task, this.#forkCalls),
      local, callNode: this.#callNode, table: this.nodeIpc.table,
    };
  }

  /**
   * Node `node` died. The ports and send-once rights it held are settled (NodeIpc.nodeDown); the
   * dead-name requests of tasks here on ports that died with it fire (those requests were kept
   * with the queues on the dead node); the references its maps held on objects homed here are
   * dropped, and objects no one maps any more are freed.
   * Conditions: runs on each surviving node when it learns of the death; later calls do nothing.
   * The references out-of-line regions of messages there held go too (queued, held or made
   * there). Not recovered: those of messages on their way to it when it died, and of maps or
   * messages beyond its MapHoldings capacity (see MapHoldings).
   */
  nodeDown(node: NodeId): void {
    if (node === this.id || this.#down.has(node)) return;
    this.#down.add(node);
    this.nodeIpc.nodeDown(node);
    for (const task of [...this.#tasks.values(), ...this.#teleporting.values()]) this.deadNameSweep(task);
    this.cache.forgetNode(node);
  }
}

function isLedgerPair(value: unknown): value is TaskLedgers {
  return Array.isArray(value) && value.length === 2 && value.every(isLedgerRef);
}
