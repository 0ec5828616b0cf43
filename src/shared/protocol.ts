/**
 * The wire protocol between the host and its nodes: the one place message shapes are declared.
 * Control-plane calls are the `NodeApi` interface, carried as NodeCall / NodeReply messages
 * (see README: comlink measured as the bottleneck); every routine resolves to a plain
 * `{ kr, ... }` record and never rejects for a Mach error. Memory and ledgers cross the wire as
 * SharedArrayBuffers, which structured clone shares, never copies.
 */
import type { MemoryObjectName, MemoryObjectRef, NodeId, PortId, SecurityToken, TaskId } from './types.js';
import type { KMsg, MachMsgReceived, MachMsgSend, RightInTransit } from './message.js';


/** First message on a node's parentPort (before comlink takes over): who it is and its tables. */
/**
 * A node's end of its direct channel to another node: a worker_threads MessagePort, named by
 * shape so the published declarations need no @types/node.
 */
export interface PeerPort {
  postMessage(message: unknown): void;
}

export interface NodeStartup {
  readonly op: 'startup';
  readonly node: NodeId;
  readonly nodes: number;
  readonly pageSize: number;
  /** One reference-count table per node's default pager, indexed by node (see REF_TABLE_SLOTS). */
  readonly refTables: readonly SharedArrayBuffer[];
  /** A direct channel to every other node, indexed by node (null at this node's own index). */
  readonly peers: readonly (PeerPort | null)[];
  /** The kernel-wide port table (port-table.ts). */
  readonly portTable: SharedArrayBuffer;
  /** What each node's maps hold, indexed by node (memory-object.ts MapHoldings). */
  readonly holdings: readonly SharedArrayBuffer[];
  /**
   * The memory references held by out-of-line regions of the messages on each node, indexed by
   * node, in the same form (its `maps` word counting messages' regions).
   */
  readonly messageHoldings: readonly SharedArrayBuffer[];
  /**
   * The message fast path (workers/channel.ts): `rings[from * nodes + to]` carries kernel
   * messages from node `from` to node `to` (null where from === to); one doorbell for all nodes.
   */
  readonly rings: readonly (SharedArrayBuffer | null)[];
  readonly doorbell: SharedArrayBuffer;
}

/** The node's answer once it has installed its pager and exposed its NodeApi. */
export interface NodeReady {
  readonly op: 'ready';
  readonly node: NodeId;
}

/** A control-plane call: run `method` of the node's NodeApi with `args`. */
export interface NodeCall {
  readonly op: 'call';
  readonly id: number;
  readonly method: keyof NodeApi;
  readonly args: readonly unknown[];
}

/** The routine's `{ kr, ... }` record for call `id`. */
export interface NodeReturn {
  readonly op: 'return';
  readonly id: number;
  readonly result: unknown;
}

/** Call `id` failed outside Mach's codes (a bug, or arguments a routine could not take). */
export interface NodeFault {
  readonly op: 'fault';
  readonly id: number;
  readonly error: SerializedError;
}

/**
 * Node to node: a taskFork whose child lives elsewhere is finished there. The parent's node
 * sends the image straight to the child's node, which answers the host's call `id` itself, so
 * an image never passes through the host.
 */
export interface NodeAdopt {
  readonly op: 'adopt';
  readonly id: number;
  readonly image: TaskImage;
  readonly released: readonly MemoryObjectName[];
  /**
   * One Int32 word deciding who owns the image's references, by compare-exchange from 0: the
   * child's node sets 1 before it builds the child (its maps then hold them), the parent's node
   * sets 2 when the child's node died first (it drops them). Never both.
   */
  readonly claim: SharedArrayBuffer;
  /**
   * A teleport: the child's node answers through the parent's node (NodeAdopted), which
   * terminates the parent only then, so a child's node that dies first leaves the parent alive.
   */
  readonly teleport: boolean;
}

/** Node-to-node IPC traffic: messages and what ports need of the node that holds them. */
export type IpcTraffic =
  | { readonly op: 'kmsg'; readonly kmsg: KMsg }
  | { readonly op: 'migrate'; readonly port: PortId; readonly to: NodeId }
  | { readonly op: 'port-state'; readonly state: PortState }
  | { readonly op: 'port-died'; readonly port: PortId; readonly task: TaskId }
  | { readonly op: 'no-senders'; readonly port: PortId }
  | { readonly op: 'destroy-port'; readonly port: PortId }
  | { readonly op: 'dnrequest'; readonly port: PortId; readonly node: NodeId; readonly task: TaskId; readonly delta: 1 | -1 };

/** A port's kernel state as it moves to another node with its receive right. */
export interface PortState {
  readonly id: PortId;
  readonly queued: readonly KMsg[];
  readonly expected: readonly (readonly [number, number])[];
  readonly held: readonly KMsg[];
  readonly mscount: number;
  readonly nsrequest: NoSendersRequest | null;
  readonly pdrequest: PortId | null;
  readonly dnrequests: readonly (readonly [string, number])[];
}

export interface NoSendersRequest {
  readonly notify: PortId;
  readonly sync: number;
}

/** IPC traffic between nodes (ipc-node.ts). */
export interface NodeIpcTraffic {
  readonly op: 'ipc';
  readonly traffic: IpcTraffic;
}

/** The child's node built the child of fork call `id`: the parent's node forgets that image. */
export interface NodeAdopted {
  readonly op: 'adopted';
  readonly id: number;
  /** For a teleport: the answer for the host, which the parent's node completes and passes on. */
  readonly answer?: NodeReturn | NodeFault;
}

/** Memory objects homed at the receiving node whose last reference went on the sender. */
export interface NodeRelease {
  readonly op: 'release';
  readonly objects: readonly MemoryObjectName[];
}

/**
 * Node `node` is down. Sent to every other node ahead of any later call, so what a node does for
 * a dead peer (dropping the images it never adopted) is done before the next call is served.
 */
export interface NodeDown {
  readonly op: 'node-down';
  readonly node: NodeId;
}

export type HostToNode = NodeStartup | NodeCall | NodeDown;
/** Between nodes also travel NodeCall / NodeReturn / NodeFault: a task operated on through its kernel port. */
export type NodeToNode = NodeAdopt | NodeAdopted | NodeRelease | NodeIpcTraffic | NodeCall | NodeReturn | NodeFault;
export type NodeToHost = NodeReady | NodeReturn | NodeFault;

/**
 * Memory-object state lives in one Int32Array per home pager, shared by every node, so mapping
 * an object on any node takes its reference with one Atomics.add and no message:
 *
 *   refTables[home]: | count | resident | generation | maps | count | ... (REF_WORDS a slot)
 *     count:      vm maps (and in-flight task images) mapping the object
 *     resident:   bit n set while node n (< RESIDENT_NODES) holds the object's buffer, so a task
 *                 image for node n can name the object instead of carrying its buffer
 *     generation: advanced each time the slot gets a new object
 *     maps:       vm maps mapping the object now (count less images and messages in flight),
 *                 so vm_region can say whether another task shares it
 */
export const REF_TABLE_SLOTS = 1 << 20;
export const REF_WORDS = 4;
export const REF_COUNT = 0;
export const REF_RESIDENT = 1;
export const REF_GENERATION = 2;
export const REF_MAPS = 3;
export const RESIDENT_NODES = 31;
export const REF_TABLE_BYTES = REF_TABLE_SLOTS * REF_WORDS * Int32Array.BYTES_PER_ELEMENT;
/** Objects one node's maps may hold at once and still be released if it dies (memory-object.ts MapHoldings). */
export const HOLDING_SLOTS = 1 << 19;
export const HOLDING_BYTES = (1 + 2 * HOLDING_SLOTS) * Int32Array.BYTES_PER_ELEMENT;

/** A memory object in a task image: its buffer is absent when the receiving node holds it already. */
export interface ImageObject extends Omit<MemoryObjectRef, 'sab'> {
  readonly sab: SharedArrayBuffer | null;
}

/**
 * A ledger on the wire. Layout of `sab` (BigInt64 words, updated with Atomics):
 *   | 0: limit in bytes | 1: bytes charged |
 */
export interface LedgerRef {
  readonly id: number;
  readonly sab: SharedArrayBuffer;
}
export const LEDGER_LIMIT = 0;
export const LEDGER_BALANCE = 1;
export const LEDGER_WORDS = 2;

/** task_create's two ledgers: wired, then paged. */
export type TaskLedgers = readonly [wired: LedgerRef, paged: LedgerRef];

/**
 * Everything a child task is made of, captured atomically on the parent's node. The map is flat
 * so 10,000 regions cross a thread as one typed array, and each memory object's buffer crosses
 * once however many entries map it:
 *
 *   entries: | start | end | offset | protection | maxProtection | inheritance | object | ... (IMAGE_ENTRY_WORDS each)
 *   objects: | home | slot | generation | ...                              (IMAGE_OBJECT_WORDS each)
 *   buffers: [object 0's SharedArrayBuffer or null, object 1's, ...]  (null: resident there)
 *
 * Each object already holds one reference taken for the child, which the child's map adopts.
 */
export interface TaskImage {
  readonly entries: Float64Array;
  readonly objects: Int32Array;
  readonly buffers: readonly (SharedArrayBuffer | null)[];
  readonly token: SecurityToken;
  readonly ledgers: TaskLedgers;
  /** The special and registered ports the child inherits, a send right each. */
  readonly ports: InheritedPorts;
}

/** The ports a child inherits (task_create.html), each a send right the holder owns. */
export interface InheritedPorts {
  readonly special: readonly (readonly [number, PortId])[];
  readonly registered: readonly (PortId | null)[];
}
export const IMAGE_ENTRY_WORDS = 7;
export const IMAGE_OBJECT_WORDS = 3;

/** One vm map entry as encoded in and decoded from a task image. */
export interface VmEntryImage {
  readonly start: number;
  readonly end: number;
  readonly offset: number;
  readonly protection: number;
  readonly maxProtection: number;
  readonly inheritance: number;
  readonly object: MemoryObjectRef;
}

/** Builds a task image; objects are numbered in the order they are first added. */
export class TaskImageWriter {
  readonly #entries: number[] = [];
  readonly #objects: number[] = [];
  readonly #buffers: (SharedArrayBuffer | null)[] = [];
  readonly #indexByKey = new Map<number, number>();
  /** Whether the receiving node holds an object's buffer already (then the image only names it). */
  readonly #resident: (object: MemoryObjectRef) => boolean;

  constructor(resident: (object: MemoryObjectRef) => boolean = () => false) {
    this.#resident = resident;
  }

  /** Adds an object (once per key) and returns its index in the image. */
  object(ref: MemoryObjectRef): number {
    const key = ref.home * REF_TABLE_SLOTS + ref.slot;
    let index = this.#indexByKey.get(key);
    if (index === undefined) {
      index = this.#buffers.length;
      this.#indexByKey.set(key, index);
      this.#objects.push(ref.home, ref.slot, ref.generation);
      this.#buffers.push(this.#resident(ref) ? null : ref.sab);
    }
    return index;
  }

  entry(entry: Omit<VmEntryImage, 'object'>, object: MemoryObjectRef): void {
    this.#entries.push(entry.start, entry.end, entry.offset, entry.protection, entry.maxProtection,
      entry.inheritance, this.object(object));
  }

  finish(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts): TaskImage {
    return {
      ports,
      entries: new Float64Array(this.#entries),
      objects: new Int32Array(this.#objects),
      buffers: this.#buffers,
      token,
      ledgers,
    };
  }
}

/** The objects of an image, in index order. */
export function imageObjects(image: TaskImage): ImageObject[] {
  return image.buffers.map((sab, index) => ({
    home: image.objects[index * IMAGE_OBJECT_WORDS]! as NodeId,
    slot: image.objects[index * IMAGE_OBJECT_WORDS + 1]!,
    generation: image.objects[index * IMAGE_OBJECT_WORDS + 2]!,
    sab,
  }));
}

/** The entries of an image, in address order, each with its object from `objects`. */
export function imageEntries<T>(image: TaskImage, objects: readonly T[]): (Omit<VmEntryImage, 'object'> & { object: T })[] {
  const words = image.entries;
  const entries = new Array<Omit<VmEntryImage, 'object'> & { object: T }>(words.length / IMAGE_ENTRY_WORDS);
  for (let at = 0, index = 0; at < words.length; at += IMAGE_ENTRY_WORDS, index++) {
    entries[index] = {
      start: words[at]!, end: words[at + 1]!, offset: words[at + 2]!, protection: words[at + 3]!,
      maxProtection: words[at + 4]!, inheritance: words[at + 5]!, object: objects[words[at + 6]!]!,
    };
  }
  return entries;
}

/** How a child's address space is drawn from its parent (MACH.md §4). */
export type ForkMode = 'create' | 'clone' | 'teleport';

/** vm_region's answer (VM_REGION_BASIC_INFO plus the region's bounds). */
export interface RegionInfo {
  readonly address: number;
  readonly size: number;
  readonly protection: number;
  readonly maxProtection: number;
  readonly inheritance: number;
  /** True while another task maps the same memory object. */
  readonly shared: boolean;
  readonly offset: number;
  /** Which memory object backs the region: `home:slot`. */
  readonly object: string;
}

/** task_info's answer. */
export interface TaskBasicInfo {
  readonly node: NodeId;
  readonly suspendCount: number;
  readonly virtualSize: number;
  readonly regionCount: number;
  readonly threadCount: number;
  readonly securityToken: SecurityToken;
}

/** default_pager_info for one node. */
export interface PagerInfo {
  readonly node: NodeId;
  readonly objects: number;
  readonly bytes: number;
  /** True when the node is down: its pager's figures are unknown (0 here). */
  readonly down?: boolean;
}

export interface KrReply { readonly kr: number }
/** Replies that may drop the last reference to objects homed on other nodes. */
export interface ReleasingReply extends KrReply { readonly released: readonly MemoryObjectName[] }

/**
 * The fork reply: `child` when the child was finished on the parent's node, else `image` for
 * the child's node to adopt; `released` as for ReleasingReply (a teleported parent's memory).
 */
export interface ForkReply extends KrReply {
  readonly child?: TaskId;
  readonly image?: TaskImage;
  readonly released?: readonly MemoryObjectName[];
  /** The node the image is for, when it is not the parent's. */
  readonly childNode?: NodeId;
  /** A teleport to another node: the parent, set aside until the child is built (or not). */
  readonly teleported?: TaskId;
}

/** A direct view of task memory: the region's buffer and the byte range within it. */
export interface ViewReply extends KrReply {
  readonly sab?: SharedArrayBuffer;
  readonly byteOffset?: number;
  readonly length?: number;
}

/** The control-plane interface every node exposes (comlink `expose`). */
export interface NodeApi {
  taskBootstrap(token: SecurityToken, ledgers: TaskLedgers): { kr: number; task?: TaskId };
  taskFork(parent: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId,
    ledgers: TaskLedgers | null): ForkReply;
  taskAdopt(image: TaskImage, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply>;
  taskTerminate(task: TaskId): ReleasingReply;
  taskSuspend(task: TaskId): KrReply;
  taskResume(task: TaskId): KrReply;
  taskInfo(task: TaskId): { kr: number; info?: TaskBasicInfo };
  taskSetSecurityToken(task: TaskId, token: SecurityToken): KrReply;
  taskExecute(task: TaskId, moduleUrl: string, exportName: string, args: readonly unknown[]):
    Promise<{ kr: number; value?: unknown; error?: SerializedError }>;

  vmAllocate(task: TaskId, address: number, size: number, anywhere: boolean): { kr: number; address: number };
  vmDeallocate(task: TaskId, address: number, size: number): ReleasingReply;
  vmProtect(task: TaskId, address: number, size: number, setMaximum: boolean, protection: number): KrReply;
  vmInherit(task: TaskId, address: number, size: number, inheritance: number): KrReply;
  vmRegion(task: TaskId, address: number): { kr: number; region?: RegionInfo };
  vmRegions(task: TaskId): { kr: number; regions?: RegionInfo[] };
  vmRead(task: TaskId, address: number, size: number): { kr: number; data?: Uint8Array };
  vmWrite(task: TaskId, address: number, data: Uint8Array): KrReply;
  vmCopy(task: TaskId, source: number, size: number, dest: number): KrReply;
  vmView(task: TaskId, address: number, size: number): ViewReply;

  portAllocate(task: TaskId, right: number): { kr: number; name: number };
  portDeallocate(task: TaskId, name: number): KrReply;
  portDestroy(task: TaskId, name: number): KrReply;
  portModRefs(task: TaskId, name: number, right: number, delta: number): KrReply;
  portGetRefs(task: TaskId, name: number, right: number): { kr: number; refs: number };
  portType(task: TaskId, name: number): { kr: number; type: number };
  portNames(task: TaskId): { kr: number; names: readonly number[]; types: readonly number[] };
  portMoveMember(task: TaskId, member: number, after: number): KrReply;
  portInsertRight(task: TaskId, name: number, poly: number | RightInTransit, polyPoly: number): KrReply;
  portExtractRight(task: TaskId, name: number, msgtName: number): { kr: number; right?: RightInTransit; type?: number };
  portRequestNotification(task: TaskId, name: number, variant: number, sync: number, notify: number,
    notifyPoly: number): Promise<{ kr: number; previous: number }>;
  portGetAttributes(task: TaskId, name: number, flavor: number): Promise<{ kr: number; info?: unknown }>;
  portSetAttributes(task: TaskId, name: number, flavor: number, info: unknown): KrReply;
  /** mach_msg: send `msg` (MACH_SEND_MSG), then receive on `rcvName` (MACH_RCV_MSG). */
  machMsg(task: TaskId, msg: MachMsgSend | null, option: number, rcvName: number, timeout: number, rcvSize?: number):
    Promise<{ kr: number; msg?: MachMsgReceived; size?: number }>;
  taskSelf(task: TaskId): { kr: number; name: number };
  taskGetSpecialPort(task: TaskId, which: number): { kr: number; name: number };
  taskSetSpecialPort(task: TaskId, which: number, name: number): KrReply;
  portsRegister(task: TaskId, names: readonly number[]): KrReply;
  portsLookup(task: TaskId): { kr: number; names: readonly number[] };

  pagerRelease(objects: readonly MemoryObjectName[]): KrReply;
  /** The buffers of live objects homed here (a node adopting an image that only named them). */
  pagerBuffers(slots: readonly number[]): { kr: number; buffers?: SharedArrayBuffer[] };
  /** Drops the references a task image holds (its child will never be built). */
  imageRelease(image: TaskImage): ReleasingReply;
  pagerInfo(): PagerInfo;
}

/** A non-Mach failure crossing the wire (a thrown error in user code run by taskExecute). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    return error.stack === undefined
      ? { name: error.name, message: error.message }
      : { name: error.name, message: error.message, stack: error.stack };
  }
  return { name: 'Error', message: String(error) };
}
