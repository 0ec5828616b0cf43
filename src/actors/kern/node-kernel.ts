/**
 * The kernel of one node: its task table and default pager, and the NodeApi routines the host
 * calls. Task creation captures the parent's map here in one synchronous step, so concurrent
 * callers each see a consistent snapshot: a node runs one routine at a time.
 */
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, KERN_TERMINATED,
  KERN_NODE_DOWN, MACH_MSG_SUCCESS, MACH_RCV_MSG, MACH_RCV_TIMEOUT, MACH_SEND_INVALID_DEST,
  MACH_SEND_INVALID_HEADER, MACH_SEND_MSG,
  MACH_SEND_TIMEOUT, MACH_PORT_TYPE_RECEIVE, TASK_HOST_PORT, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from '../../shared/constants.js';
import type { TaskContext } from '../../shared/context.js';
import { KernError } from '../../shared/errors.js';
import { imageEntries, imageObjects, TaskImageWriter, type ForkMode, type ForkReply, type KrReply, type NodeApi, type NodeStartup, type PagerInfo, type RegionInfo, type ReleasingReply, type TaskBasicInfo, type TaskImage, type TaskLedgers, type ViewReply, type InheritedPorts, type IpcTraffic, type NodeToNode, type ImageObject, REF_TABLE_SLOTS } from '../../shared/protocol.js';
import { isSecurityToken, makeTaskId, taskIdNode, type NodeId, type SecurityToken, type TaskId, type PortId, type MemoryObjectName } from '../../shared/types.js';
import { DefaultPager } from '../vm/default-pager.js';
import { NodeIpc } from '../ipc/ipc-node.js';
import { releaseInherited, TaskIpc, type OolMemory } from '../ipc/ipc-task.js';
import { PortKind, PortTable } from '../ipc/port-table.js';
import { taskIpcMach, type TaskCall, type TaskIpcMach } from '../../shared/ipc-facade.js';
import { taskMach, type CallOnTask, type TaskMach } from '../../shared/task-facade.js';
import { isLedgerRef, Ledger } from './ledger.js';
import { MapHoldings, MemoryObject, ObjectReferences } from '../vm/memory-object.js';
import { TaskActor } from './task.js';
import { VmMap, type VmMapEntry, type VmMapHooks } from '../vm/vm-map.js';
import { loadExport, resumesTaskCode, runTaskCode, taskCodeRuns, type CodeReply } from './task-code.js';
import type { MachMsgReceived, MachMsgSend, RightInTransit } from '../../shared/message.js';

const FORK_MODES: readonly ForkMode[] = ['create', 'clone', 'teleport'];

/** How a node reaches the others: one-way traffic, and calls answered by their NodeApi. */
export interface NodeLinks {
  post(node: NodeId, message: NodeToNode): void;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
}

export class NodeKernel implements NodeApi {
  readonly id: NodeId;
  readonly nodes: number;
  readonly pageSize: number;
  readonly #references: ObjectReferences;
  readonly #pager: DefaultPager;
  readonly #tasks = new Map<TaskId, TaskActor>();
  #nextTask = 1;

  readonly #ipc: NodeIpc;
  readonly #post: (node: NodeId, message: NodeToNode) => void;
  readonly #callNode: NodeLinks['callNode'];
  /** Every node's MapHoldings (this node's is written here; a dead node's is read to release it). */
  readonly #holdingTables: readonly SharedArrayBuffer[];
  readonly #holdings: MapHoldings;
  /** Every node's record of the references its messages' regions hold (this node's written here). */
  readonly #messageTables: readonly SharedArrayBuffer[];
  readonly #messageHoldings: MapHoldings;
  /** This node's entries in it: references held by messages here, by object key. */
  readonly #inMessages = new Map<number, { count: number; readonly holding: number | undefined }>();
  /** Nodes this node has seen go down (nodeDown ran for them). */
  readonly #down = new Set<NodeId>();
  /** Parents of teleports to another node, out of the task table until their child is built or not. */
  readonly #teleporting = new Map<TaskId, TaskActor>();

  /**
   * `links` reach the other nodes directly (node-main's peer channels). Without `holdings`
   * (single-node tests) this node's holdings are recorded where no one reads them.
   */
  constructor(startup: Pick<NodeStartup, 'node' | 'nodes' | 'pageSize' | 'refTables' | 'portTable'> &
    Partial<Pick<NodeStartup, 'holdings' | 'messageHoldings'>>,
  links: NodeLinks = { post: () => {}, callNode: async () => ({ kr: KERN_NODE_DOWN }) }) {
    this.id = startup.node;
    this.nodes = startup.nodes;
    this.pageSize = startup.pageSize;
    const post = links.post;
    this.#post = post;
    this.#callNode = links.callNode;
    this.#references = new ObjectReferences(startup.refTables);
    this.#pager = new DefaultPager(this.id, this.#references);
    this.#holdingTables = startup.holdings ?? [];
    this.#holdings = new MapHoldings(this.#holdingTables[this.id] ?? MapHoldings.create());
    this.#messageTables = startup.messageHoldings ?? [];
    this.#messageHoldings = new MapHoldings(this.#messageTables[this.id] ?? MapHoldings.create());
    this.#ipc = new NodeIpc(this.id, new PortTable(startup.portTable, this.id), {
      post: (node, traffic) => {
        if (this.#down.has(node)) {
          // After the sweep only a queue shipped to a receive right taken there just before
          // the death can still be headed there (NodeIpc.reclaim), or a message caught in it.
          if (traffic.op === 'port-state') this.#ipc.reclaim(traffic.state);
          else if (traffic.op === 'kmsg') this.#ipc.destroyMessage(traffic.kmsg);
          return;
        }
        this.#ipc.departing(node, traffic);
        post(node, { op: 'ipc', traffic });
      },
      releaseObject: (object) => this.#releaseNow([object]),
      holdRegions: (regions, delta) => { for (const region of regions) this.#holdInMessage(region.object, delta); },
      portDied: (task, port) => (this.#tasks.get(task) ?? this.#teleporting.get(task))?.ipc.portDied(port),
    });
  }

  /**
   * The buffers of the objects some task on this node maps, by object key: what an image for
   * this node may leave out. The shared table's resident bit for this node is set while an
   * entry lives, and cleared before the last map's reference goes, so a slot reused for another
   * object never shows this node resident.
   */
  readonly #held = new Map<number, { readonly object: MemoryObject; maps: number; readonly holding: number | undefined }>();
  readonly #buffers: VmMapHooks = {
    mapped: (object) => {
      this.#references.countMaps(object, 1);
      const held = this.#held.get(object.key);
      if (held !== undefined && held.object.generation === object.generation) {
        held.maps++;
        if (held.holding !== undefined) this.#holdings.set(held.holding, held.maps);
        return;
      }
      if (held?.holding !== undefined) this.#holdings.remove(held.holding);
      this.#held.set(object.key, { object, maps: 1, holding: this.#holdings.add(object.key) });
      if (object.home !== this.id) this.#references.setResident(object, this.id, true);
    },
    // The holding shrinks before the caller drops the reference: a node dying in between
    // leaks one reference rather than having it released twice.
    unmapped: (object) => {
      this.#references.countMaps(object, -1);
      const held = this.#held.get(object.key);
      if (held === undefined) return;
      if (--held.maps > 0) {
        if (held.holding !== undefined) this.#holdings.set(held.holding, held.maps);
        return;
      }
      this.#held.delete(object.key);
      if (held.holding !== undefined) this.#holdings.remove(held.holding);
      if (object.home !== this.id) this.#references.setResident(object, this.id, false);
    },
  };

  /**
   * A message here holds one more (`delta` 1) or one fewer reference on `object`, recorded for
   * the survivors should this node die. Raised after the reference is taken and lowered before
   * it is dropped or handed on, so a death in between leaks one rather than releasing it twice.
   */
  #holdInMessage(object: MemoryObjectName, delta: 1 | -1): void {
    const key = object.home * REF_TABLE_SLOTS + object.slot;
    const held = this.#inMessages.get(key);
    if (held === undefined) {
      if (delta === 1) this.#inMessages.set(key, { count: 1, holding: this.#messageHoldings.add(key) });
      return;
    }
    held.count += delta;
    if (held.count > 0) {
      if (held.holding !== undefined) this.#messageHoldings.set(held.holding, held.count);
      return;
    }
    this.#inMessages.delete(key);
    if (held.holding !== undefined) this.#messageHoldings.remove(held.holding);
  }

  /** The buffer of an image object: carried, held here, or (homed here) the pager's own. */
  #bufferOf(object: ImageObject): SharedArrayBuffer | undefined {
    if (object.sab !== null) return object.sab;
    const held = this.#held.get(object.home * REF_TABLE_SLOTS + object.slot)?.object;
    if (held !== undefined && held.generation === object.generation) return held.sab;
    return object.home === this.id ? this.#pager.buffer(object.slot, object.generation) : undefined;
  }

  /** IPC traffic from another node. */
  receiveTraffic(traffic: IpcTraffic): void {
    if (traffic.op === 'kmsg') this.#ipc.countArrival(traffic.kmsg);
    this.#ipc.receiveTraffic(traffic);
  }

  /**
   * A new task, or undefined when the port table has no slot for its kernel port (the caller
   * answers KERN_RESOURCE_SHORTAGE). Nothing else is taken before the port, so nothing leaks.
   */
  #newTask(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts | null): TaskActor | undefined {
    let task: TaskActor;
    try {
      task = new TaskActor(makeTaskId(this.id, this.#nextTask++), this.id,
        new VmMap(this.pageSize, undefined, this.#buffers), token, ledgers,
        (actor) => new TaskIpc(this.#ipc, actor.id, this.#oolMemory(actor), ports));
    } catch (error) {
      // TaskIpc throws RangeError('port table full') when its kernel port cannot be made.
      if (error instanceof RangeError) return undefined;
      throw error;
    }
    this.#tasks.set(task.id, task);
    return task;
  }

  /** Releases references now, handing objects homed elsewhere to their pagers directly. */
  #releaseNow(objects: Iterable<MemoryObjectName>): void { this.#toHomes(this.#release(objects)); }

  /** Hands objects whose last reference is gone, homed on other nodes, to their pagers. */
  #toHomes(released: readonly MemoryObjectName[]): void {
    const byHome = new Map<NodeId, MemoryObjectName[]>();
    for (const object of released) byHome.set(object.home, [...(byHome.get(object.home) ?? []), object]);
    for (const [home, names] of byHome) this.#post(home, { op: 'release', objects: names });
  }

  /** Out-of-line message memory of `task`: shared references or private copies of its regions. */
  #oolMemory(task: TaskActor): OolMemory {
    return {
      capture: (descriptor) => {
        const { address, size } = descriptor;
        if (descriptor.share === true) {
          const range = task.map.objectRange(address, size);
          if (range.object === undefined) return { kr: range.kr };
          this.#references.reference(range.object);
          return { kr: KERN_SUCCESS, region: { object: range.object.toRef(), offset: range.offset!, size } };
        }
        const read = task.map.read(address, size);
        if (read.data === undefined) return { kr: read.kr };
        const made = this.#pager.create(task.map.roundPage(Math.max(size, 1)), task.pagedLedger);
        if (made.object === undefined) return { kr: made.kr };
        new Uint8Array(made.object.sab).set(read.data);
        return { kr: KERN_SUCCESS, region: { object: made.object.toRef(), offset: 0, size } };
      },
      map: (region) => {
        const mapped = task.map.mapObject(new MemoryObject(region.object), region.offset, region.size);
        // The map holds one reference per object: a region of an object it maps already, or
        // one it could not map, gives its reference back.
        if (!mapped.fresh) this.#releaseNow([region.object]);
        return mapped;
      },
      deallocate: (address, size) => this.#releaseNow(task.map.deallocate(address, size).unmapped),
    };
  }

  /**
   * Drops one reference per object; frees the ones homed here that reached zero and returns
   * the names of those homed elsewhere, for the host to hand to their pagers.
   */
  #release(objects: Iterable<MemoryObjectName>): MemoryObjectName[] {
    const remote: MemoryObjectName[] = [];
    for (const object of objects) {
      if (!this.#references.release(object)) continue;
      if (object.home === this.id) this.#pager.terminate(object.slot);
      else remote.push({ home: object.home, slot: object.slot });
    }
    return remote;
  }

  /**
   * The first task, with a send right to the host port (made here) as its TASK_HOST_PORT.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for a malformed token or ledger pair.
   */
  taskBootstrap(token: SecurityToken, ledgers: TaskLedgers): { kr: number; task?: TaskId } {
    if (!isSecurityToken(token) || !isLedgerPair(ledgers)) return { kr: KERN_INVALID_ARGUMENT };
    const host = this.#ipc.createPort(PortKind.HOST);
    if (host === undefined) return { kr: KERN_RESOURCE_SHORTAGE };
    // Held by no node until the task's TaskIpc takes it, as an inherited right.
    this.#ipc.table.addSendRight(host, false);
    const task = this.#newTask(token, ledgers, { special: [[TASK_HOST_PORT, host]], registered: [null, null, null] });
    if (task === undefined) {
      this.#ipc.destroyPort(host);
      return { kr: KERN_RESOURCE_SHORTAGE };
    }
    return { kr: KERN_SUCCESS, task: task.id };
  }

  /**
   * task_create / norma_task_create / norma_task_clone / norma_task_teleport, parent half.
   * Conditions: runs on the parent's node. With `childNode` here, the child is finished here;
   * otherwise the reply carries a task image for `childNode` to adopt, holding one reference
   * per distinct shared object and the private copies made for COPY regions.
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
    if (mode === 'teleport' && childNode === this.id) return { kr: KERN_SUCCESS, child: parent.id };
    const captured = this.#capture(parent, mode, inheritMemory, ledgers ?? parent.ledgers, childNode);
    if (captured.image === undefined) return { kr: captured.kr };
    if (childNode !== this.id) {
      if (mode !== 'teleport') return { kr: KERN_SUCCESS, image: captured.image, released: [], childNode };
      // Calls naming the parent answer KERN_INVALID_ARGUMENT from now on, as they will once it
      // is gone; it is terminated only when its child exists (teleportSettled), so a child's
      // node that dies first leaves it alive and unchanged.
      this.#tasks.delete(parent.id);
      this.#teleporting.set(parent.id, parent);
      return { kr: KERN_SUCCESS, image: captured.image, released: [], childNode, teleported: parent.id };
    }
    const objects = imageObjects(captured.image);
    return this.#adopted(captured.image, [], objects, objects.map((object) => this.#bufferOf(object)!));
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

  /**
   * norma_task_* child half: builds the child from an image captured on the parent's node.
   * An image leaves out buffers this node held when it was made; one let go of since is fetched
   * from its home pager (the image's reference keeps the object alive there).
   * Returns the fork reply the host is waiting for, passing on the parent's `released`;
   * KERN_NODE_DOWN when a home node is down; KERN_RESOURCE_SHORTAGE when the port table has no
   * slot for the child's kernel port. On failure the image's references are dropped.
   */
  taskAdopt(image: TaskImage, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply> {
    const objects = imageObjects(image);
    const buffers = objects.map((object) => this.#bufferOf(object));
    if (buffers.includes(undefined)) return this.#adoptFetching(image, released, objects, buffers);
    return this.#adopted(image, released, objects, buffers as SharedArrayBuffer[]);
  }

  /** Fetches the missing buffers from their homes, all homes at once, then builds the child. */
  async #adoptFetching(image: TaskImage, released: readonly MemoryObjectName[], objects: ImageObject[],
    buffers: (SharedArrayBuffer | undefined)[]): Promise<ForkReply> {
    const byHome = new Map<NodeId, number[]>();
    buffers.forEach((buffer, index) => {
      if (buffer === undefined) byHome.set(objects[index]!.home, [...(byHome.get(objects[index]!.home) ?? []), index]);
    });
    const homes = [...byHome];
    const replies = await Promise.all(homes.map(([home, indices]) =>
      this.#callNode(home, 'pagerBuffers', [indices.map((index) => objects[index]!.slot)]) as
        Promise<{ kr: number; buffers?: SharedArrayBuffer[] }>));
    const failed = replies.find((reply) => reply.buffers === undefined);
    if (failed !== undefined) {
      // imageRelease has dropped the references: only the objects it freed go on, to their homes.
      this.#toHomes(this.imageRelease(image).released);
      return { kr: failed.kr === KERN_SUCCESS ? KERN_FAILURE : failed.kr, released };
    }
    homes.forEach(([, indices], at) => indices.forEach((index, order) => { buffers[index] = replies[at]!.buffers![order]; }));
    return this.#adopted(image, released, objects, buffers as SharedArrayBuffer[]);
  }

  #adopted(image: TaskImage, released: readonly MemoryObjectName[], objects: readonly ImageObject[],
    buffers: readonly SharedArrayBuffer[]): ForkReply {
    const child = this.#newTask(image.token, image.ledgers, image.ports);
    if (child === undefined) {
      this.#toHomes(this.imageRelease(image).released);
      return { kr: KERN_RESOURCE_SHORTAGE, released };
    }
    const mapped = objects.map((object, index) => new MemoryObject({ ...object, sab: buffers[index]! }));
    for (const entry of imageEntries(image, mapped)) child.map.enter(entry);
    return { kr: KERN_SUCCESS, child: child.id, released };
  }

  /** The buffers of live objects homed here, for a node adopting an image that only named them. */
  pagerBuffers(slots: readonly number[]): { kr: number; buffers?: SharedArrayBuffer[] } {
    const buffers = slots.map((slot) => this.#pager.buffer(slot));
    return buffers.includes(undefined) ? { kr: KERN_INVALID_ARGUMENT } : { kr: KERN_SUCCESS, buffers: buffers as SharedArrayBuffer[] };
  }

  /**
   * Captures the child's address space: by each region's inheritance for 'create', shared
   * whatever the inheritance for 'clone' and 'teleport'. The child's entries keep the parent's
   * inheritance values. All copies are made before any reference is taken, so a shortage part
   * way through can be undone completely.
   */
  #capture(parent: TaskActor, mode: ForkMode, inheritMemory: boolean, ledgers: TaskLedgers, childNode: NodeId):
    { kr: number; image?: TaskImage } {
    // Buffers the child's node holds already are named, not carried (a copy is new everywhere).
    const image = new TaskImageWriter((object) => childNode !== this.id && object.generation !== 0 &&
      this.#references.isResident(object, childNode));
    if (!inheritMemory) return { kr: KERN_SUCCESS, image: image.finish(parent.token, ledgers, parent.ipc.inheritable()) };
    const paged = new Ledger(ledgers[1]);
    const copies: MemoryObject[] = [];
    const shared = new Map<number, MemoryObject>();
    for (const entry of parent.map.entries()) {
      const inheritance = mode === 'create' ? entry.inheritance : VM_INHERIT_SHARE;
      if (inheritance === VM_INHERIT_NONE) continue;
      if (inheritance === VM_INHERIT_COPY) {
        const copy = this.#copyEntry(entry, paged);
        if (copy.object === undefined) {
          this.#release(copies);
          return { kr: copy.kr };
        }
        copies.push(copy.object);
        image.entry({ ...entry, offset: 0 }, copy.object);
      } else {
        shared.set(entry.object.key, entry.object);
        image.entry(entry, entry.object);
      }
    }
    for (const object of shared.values()) this.#references.reference(object);
    return { kr: KERN_SUCCESS, image: image.finish(parent.token, ledgers, parent.ipc.inheritable()) };
  }

  /** A private copy of an entry's bytes, as they are now, in a new object charged to `ledger`. */
  #copyEntry(entry: VmMapEntry, ledger: Ledger): { kr: number; object?: MemoryObject } {
    const length = entry.end - entry.start;
    const made = this.#pager.create(length, ledger);
    if (made.object === undefined) return made;
    new Uint8Array(made.object.sab).set(new Uint8Array(entry.object.sab, entry.offset, length));
    return made;
  }

  #task(id: TaskId): TaskActor | undefined { return this.#tasks.get(id); }

  #terminate(task: TaskActor): MemoryObjectName[] {
    this.#tasks.delete(task.id);
    return this.#release(task.terminate());
  }

  /**
   * task_terminate: the task is gone; its memory objects are freed once no task maps them.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown or already terminated task.
   */
  taskTerminate(id: TaskId): ReleasingReply {
    const task = this.#task(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, released: [] };
    return { kr: KERN_SUCCESS, released: this.#terminate(task) };
  }

  taskSuspend(id: TaskId): KrReply {
    return { kr: this.#task(id)?.suspend() ?? KERN_INVALID_ARGUMENT };
  }

  taskResume(id: TaskId): KrReply {
    return { kr: this.#task(id)?.resume() ?? KERN_INVALID_ARGUMENT };
  }

  taskInfo(id: TaskId): { kr: number; info?: TaskBasicInfo } {
    const task = this.#task(id);
    return task === undefined ? { kr: KERN_INVALID_ARGUMENT } : { kr: KERN_SUCCESS, info: task.info() };
  }

  taskSetSecurityToken(id: TaskId, token: SecurityToken): KrReply {
    const task = this.#task(id);
    if (task === undefined || !isSecurityToken(token)) return { kr: KERN_INVALID_ARGUMENT };
    task.setToken(token);
    return { kr: KERN_SUCCESS };
  }

  /**
   * Runs `exportName` of the module at `moduleUrl` on this node, in the task: it receives a
   * TaskContext and `args`. Waits while the task is suspended. Every failure but KERN_TERMINATED
   * carries an error whose message names the module and export or what the code threw.
   * Returns KERN_SUCCESS with the function's result; KERN_INVALID_ARGUMENT for an unknown task,
   * malformed arguments, a relative or missing module, or an export that is missing or not a
   * function; KERN_TERMINATED when the task ends before it could run; KERN_FAILURE when loading
   * or running the code throws. A result that cannot be cloned is answered by node-main with
   * KERN_FAILURE (see uncloneableReply).
   */
  async taskExecute(id: TaskId, moduleUrl: string, exportName: string, args: readonly unknown[]): Promise<CodeReply> {
    const task = this.#task(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, error: { name: 'Error', message: `no task ${id} on node ${this.id}` } };
    if (typeof moduleUrl !== 'string' || typeof exportName !== 'string' || !Array.isArray(args)) {
      return { kr: KERN_INVALID_ARGUMENT, error: { name: 'TypeError', message: 'module and export must be strings, args an array' } };
    }
    const loaded = await loadExport(moduleUrl, exportName);
    if (!('entry' in loaded)) return loaded;
    if (!await task.whenRunnable()) return { kr: KERN_TERMINATED };
    return runTaskCode(task.id, loaded.entry, [this.#context(task), ...args]);
  }

  /** What task code gets; each call into the kernel marks the task's code as running again. */
  #context(task: TaskActor): TaskContext {
    const call = ((method: keyof NodeApi, ...args: unknown[]) => resumesTaskCode(task.id,
      Promise.resolve((this[method] as (...routineArgs: unknown[]) => unknown)(task.id, ...args)))) as TaskCall;
    const onTaskPort = this.#onTaskPort(task) as (name: number, ...rest: unknown[]) => Promise<{ kr: number }>;
    const onTask = ((name: number, ...rest: unknown[]) =>
      resumesTaskCode(task.id, onTaskPort(name, ...rest))) as CallOnTask<number>;
    return {
      node: this.id,
      task: task.id,
      pageSize: this.pageSize,
      mach: { ...taskIpcMach(call), ...taskMach(onTask) },
      view: (address, size) => {
        taskCodeRuns(task.id);
        const view = task.map.view(address, size);
        if (view.kr !== KERN_SUCCESS) throw new KernError(view.kr, `view(${address}, ${size})`);
        return new Uint8Array(view.sab!, view.byteOffset, view.length);
      },
    };
  }

  vmAllocate(id: TaskId, address: number, size: number, anywhere: boolean): { kr: number; address: number } {
    const task = this.#task(id);
    if (task === undefined || typeof anywhere !== 'boolean') return { kr: KERN_INVALID_ARGUMENT, address: 0 };
    return task.map.allocate(address, size, anywhere, (length) => this.#pager.create(length, task.pagedLedger));
  }

  vmDeallocate(id: TaskId, address: number, size: number): ReleasingReply {
    const task = this.#task(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, released: [] };
    const { kr, unmapped } = task.map.deallocate(address, size);
    return { kr, released: this.#release(unmapped) };
  }

  vmProtect(id: TaskId, address: number, size: number, setMaximum: boolean, protection: number): KrReply {
    const task = this.#task(id);
    if (task === undefined || typeof setMaximum !== 'boolean') return { kr: KERN_INVALID_ARGUMENT };
    return { kr: task.map.protect(address, size, setMaximum, protection) };
  }

  vmInherit(id: TaskId, address: number, size: number, inheritance: number): KrReply {
    return { kr: this.#task(id)?.map.inherit(address, size, inheritance) ?? KERN_INVALID_ARGUMENT };
  }

  vmRegion(id: TaskId, address: number): { kr: number; region?: RegionInfo } {
    const task = this.#task(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const { kr, entry } = task.map.region(address);
    return entry === undefined ? { kr } : { kr, region: this.#regionInfo(entry) };
  }

  vmRegions(id: TaskId): { kr: number; regions?: RegionInfo[] } {
    const task = this.#task(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT };
    return { kr: KERN_SUCCESS, regions: [...task.map.entries()].map((entry) => this.#regionInfo(entry)) };
  }

  #regionInfo(entry: VmMapEntry): RegionInfo {
    return {
      address: entry.start,
      size: entry.end - entry.start,
      protection: entry.protection,
      maxProtection: entry.maxProtection,
      inheritance: entry.inheritance,
      // Another map, not merely a reference: images and messages in flight hold references too.
      shared: this.#references.maps(entry.object) > 1,
      offset: entry.offset,
      object: entry.object.label,
    };
  }

  vmRead(id: TaskId, address: number, size: number): { kr: number; data?: Uint8Array } {
    return this.#task(id)?.map.read(address, size) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  vmWrite(id: TaskId, address: number, data: Uint8Array): KrReply {
    return { kr: this.#task(id)?.map.write(address, data) ?? KERN_INVALID_ARGUMENT };
  }

  vmCopy(id: TaskId, source: number, size: number, dest: number): KrReply {
    return { kr: this.#task(id)?.map.copy(source, size, dest) ?? KERN_INVALID_ARGUMENT };
  }

  vmView(id: TaskId, address: number, size: number): ViewReply {
    return this.#task(id)?.map.view(address, size) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  #ipcOf(id: TaskId): TaskIpc | undefined { return this.#tasks.get(id)?.ipc; }

  /**
   * Calls made by `caller` naming a task by a send right to its kernel port: what lets a holder
   * operate on a task, wherever it lives. A name without such a right answers
   * MACH_SEND_INVALID_DEST, as a message to it would; memory the call released for good is
   * handed to its pagers.
   */
  #onTaskPort(caller: TaskActor): CallOnTask<number> {
    return async (name, method, ...args) => {
      const target = caller.ipc.taskOfName(name);
      if (target === undefined) return { kr: MACH_SEND_INVALID_DEST };
      const node = taskIdNode(target);
      const reply = node === this.id
        ? await (this[method] as (...routineArgs: unknown[]) => unknown)(target, ...args) as { kr: number }
        : await this.#callNode(node, method, [target, ...args]);
      const released = (reply as { released?: readonly MemoryObjectName[] }).released;
      if (released !== undefined && released.length > 0) this.#releaseRemote(released);
      return reply as never;
    };
  }

  /** Objects whose last reference went on another node's routine: to their pagers. */
  #releaseRemote(objects: readonly MemoryObjectName[]): void {
    for (const object of objects) {
      if (object.home === this.id) this.#pager.terminate(object.slot);
      else this.#post(object.home, { op: 'release', objects: [object] });
    }
  }

  portAllocate(id: TaskId, right: number) { return this.#ipcOf(id)?.allocate(right) ?? { kr: KERN_INVALID_ARGUMENT, name: 0 }; }
  portDeallocate(id: TaskId, name: number) { return this.#ipcOf(id)?.deallocate(name) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portDestroy(id: TaskId, name: number) { return this.#ipcOf(id)?.destroy(name) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portModRefs(id: TaskId, name: number, right: number, delta: number) {
    return this.#ipcOf(id)?.modRefs(name, right, delta) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portGetRefs(id: TaskId, name: number, right: number) {
    return this.#ipcOf(id)?.getRefs(name, right) ?? { kr: KERN_INVALID_ARGUMENT, refs: 0 };
  }
  portType(id: TaskId, name: number) { return this.#ipcOf(id)?.type(name) ?? { kr: KERN_INVALID_ARGUMENT, type: 0 }; }
  portNames(id: TaskId) { return this.#ipcOf(id)?.names() ?? { kr: KERN_INVALID_ARGUMENT, names: [], types: [] }; }
  portMoveMember(id: TaskId, member: number, after: number) {
    return this.#ipcOf(id)?.moveMember(member, after) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  /**
   * A send or send-once right inserted from outside this node (a PortRight token) is this
   * node's to answer for from now on. Counted before the insert, which may merge a send right
   * into a name holding one and release it here.
   */
  portInsertRight(id: TaskId, name: number, poly: number | RightInTransit, polyPoly: number) {
    const ipc = this.#ipcOf(id);
    if (ipc === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const token = typeof poly === 'object' && poly !== null ? poly : undefined;
    if (token?.kind === 'send') this.#ipc.table.sendRightsHeld(token.portId, 1);
    const reply = ipc.insertRight(name, poly, polyPoly);
    if (token?.kind === 'send' && reply.kr !== KERN_SUCCESS) this.#ipc.table.sendRightsHeld(token.portId, -1);
    if (reply.kr === KERN_SUCCESS && token?.kind === 'send-once') this.#ipc.table.sendOnceMade(token.portId);
    return reply;
  }
  /**
   * A send or send-once right extracted leaves this node's count: its holder outside answers
   * for it. A receive right's table receiver stays this node (nothing records the token's holder),
   * so this node's death kills its port.
   */
  portExtractRight(id: TaskId, name: number, msgtName: number) {
    const reply: { kr: number; right?: RightInTransit; type?: number } =
      this.#ipcOf(id)?.extractRight(name, msgtName) ?? { kr: KERN_INVALID_ARGUMENT };
    if (reply.right?.kind === 'send-once') this.#ipc.table.sendOnceUsed(reply.right.portId);
    if (reply.right?.kind === 'send') this.#ipc.table.sendRightsHeld(reply.right.portId, -1);
    return reply;
  }
  /** Waits for a migrating receive right's queue first: the request is kept with the queue. */
  async portRequestNotification(id: TaskId, name: number, variant: number, sync: number, notify: number, notifyPoly: number) {
    await this.#ipcOf(id)?.settleReceiveRight(name);
    return this.#ipcOf(id)?.requestNotification(name, variant, sync, notify, notifyPoly) ?? { kr: KERN_INVALID_ARGUMENT, previous: 0 };
  }
  /** Waits for a migrating receive right's queue first, so the status is the queue's. */
  async portGetAttributes(id: TaskId, name: number, flavor: number) {
    await this.#ipcOf(id)?.settleReceiveRight(name);
    return this.#ipcOf(id)?.getAttributes(name, flavor) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portSetAttributes(id: TaskId, name: number, flavor: number, info: unknown) {
    return this.#ipcOf(id)?.setAttributes(name, flavor, info) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  /**
   * mach_msg as task `id`: the send (MACH_SEND_MSG) and then the receive (MACH_RCV_MSG); the
   * receive is skipped when the send fails. `timeout` (ms) applies to the halves whose
   * MACH_SEND_TIMEOUT / MACH_RCV_TIMEOUT option is set; the others wait as long as it takes.
   * Returns what TaskIpc.send and TaskIpc.receive return; MACH_SEND_INVALID_HEADER for a
   * malformed timeout; KERN_INVALID_ARGUMENT for an unknown task.
   */
  async machMsg(id: TaskId, msg: MachMsgSend | null, option: number, rcvName: number, timeout: number, rcvSize = 0):
    Promise<{ kr: number; msg?: MachMsgReceived; size?: number }> {
    const ipc = this.#ipcOf(id);
    if (ipc === undefined || !Number.isInteger(option)) return { kr: KERN_INVALID_ARGUMENT };
    if (typeof timeout !== 'number' || !(timeout >= 0)) return { kr: MACH_SEND_INVALID_HEADER };
    if (option & MACH_SEND_MSG) {
      const kr = await ipc.send(msg as MachMsgSend, option & MACH_SEND_TIMEOUT ? timeout : Infinity);
      if (kr !== MACH_MSG_SUCCESS) return { kr };
    }
    if (option & MACH_RCV_MSG) return ipc.receive(rcvName, option & MACH_RCV_TIMEOUT ? timeout : Infinity, option, rcvSize);
    return { kr: MACH_MSG_SUCCESS };
  }

  taskSelf(id: TaskId) {
    const ipc = this.#ipcOf(id);
    return ipc === undefined ? { kr: KERN_INVALID_ARGUMENT, name: 0 } : { kr: KERN_SUCCESS, name: ipc.selfName as number };
  }
  taskGetSpecialPort(id: TaskId, which: number) { return this.#ipcOf(id)?.getSpecialPort(which) ?? { kr: KERN_INVALID_ARGUMENT, name: 0 }; }
  taskSetSpecialPort(id: TaskId, which: number, name: number) {
    return this.#ipcOf(id)?.setSpecialPort(which, name) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portsRegister(id: TaskId, names: readonly number[]) { return this.#ipcOf(id)?.register(names) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portsLookup(id: TaskId) { return this.#ipcOf(id)?.lookupRegistered() ?? { kr: KERN_INVALID_ARGUMENT, names: [] }; }

  /** memory_object_terminate for objects homed here whose last reference went elsewhere. */
  pagerRelease(objects: readonly MemoryObjectName[]): KrReply {
    if (!Array.isArray(objects) || objects.some((object) => object.home !== this.id)) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    for (const object of objects) this.#pager.terminate(object.slot);
    return { kr: KERN_SUCCESS };
  }

  pagerInfo(): PagerInfo { return this.#pager.info(); }

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
    this.#ipc.nodeDown(node);
    for (const task of [...this.#tasks.values(), ...this.#teleporting.values()]) this.#deadNameSweep(task);
    const held = new Map<number, { maps: number; messages: number }>();
    const holdings = this.#holdingTables[node];
    const messages = this.#messageTables[node];
    for (const { key, maps } of holdings === undefined ? [] : MapHoldings.entries(holdings)) held.set(key, { maps, messages: 0 });
    for (const { key, maps: count } of messages === undefined ? [] : MapHoldings.entries(messages)) {
      const entry = held.get(key);
      if (entry === undefined) held.set(key, { maps: 0, messages: count });
      else entry.messages = count;
    }
    for (const [key, { maps, messages: count }] of held) {
      const object = { home: Math.floor(key / REF_TABLE_SLOTS) as NodeId, slot: key % REF_TABLE_SLOTS };
      if (object.home === this.id && this.#references.forgetNode(object, node, maps, count)) this.#pager.terminate(object.slot);
    }
  }

  /** Fires `task`'s dead-name requests on ports now dead (ports it holds a receive right to stay). */
  #deadNameSweep(task: TaskActor): void {
    const { space } = task.ipc;
    const dead = new Set<PortId>();
    for (const name of space.names()) {
      const entry = space.lookup(name);
      if (entry?.dnrequest == null || entry.port === null || this.#ipc.table.isAlive(entry.port)) continue;
      const own = space.lookupPort(entry.port);
      if (own === undefined || (space.lookup(own)!.type & MACH_PORT_TYPE_RECEIVE) === 0) dead.add(entry.port);
    }
    for (const port of dead) task.ipc.portDied(port);
  }

  imageRelease(image: TaskImage): ReleasingReply {
    releaseInherited(this.#ipc, image.ports);
    return { kr: KERN_SUCCESS, released: this.#release(imageObjects(image)) };
  }
}

function isLedgerPair(value: unknown): value is TaskLedgers {
  return Array.isArray(value) && value.length === 2 && value.every(isLedgerRef);
}
