/**
 * The wire protocol between the host and its nodes and between nodes: the one place message
 * shapes are declared. Control-plane calls are the `NodeApi` interface, carried as NodeCall /
 * NodeReturn / NodeFault messages (see README: comlink measured as the bottleneck); every routine
 * resolves to a plain `{ kr, ... }` record and never rejects for a Mach error. Memory and ledgers
 * cross the wire as SharedArrayBuffers, which structured clone shares, never copies; their
 * layouts are with the code that reads them: reference tables and map holdings in
 * actors/vm/memory-object.ts, ledgers in actors/kern/ledger.ts, rings and the doorbell of the
 * message fast path in workers/ring.ts and workers/doorbell.ts, kmsgs on a ring in kmsg-wire.ts.
 */
import type { MemoryObjectName, NodeId, PortId, SecurityToken, TaskId } from './types.js';
import type { KMsg, MachMsgReceived, MachMsgSend, RightInTransit } from './message.js';
import type { ThreadBasicInfo, ThreadId, ThreadStateJs } from './thread-types.js';
import type { NodeStatistics } from './statistics.js';

/**
 * A node's end of its direct channel to another node: a worker_threads MessagePort, named by
 * shape so the published declarations need no @types/node.
 */
export interface PeerPort {
  postMessage(message: unknown): void;
}

/** First message on a node's parentPort: who it is and its tables. */
export interface NodeStartup {
  readonly op: 'startup';
  readonly node: NodeId;
  readonly nodes: number;
  readonly pageSize: number;
  /** One reference-count table per node's default pager, indexed by node (layout: actors/vm/memory-object.ts). */
  readonly refTables: readonly SharedArrayBuffer[];
  /** A direct channel to every other node, indexed by node (null at this node's own index). */
  readonly peers: readonly (PeerPort | null)[];
  /** The kernel-wide port table (layout: actors/ipc/port-table.ts). */
  readonly portTable: SharedArrayBuffer;
  /** What each node's maps hold, indexed by node (layout: actors/vm/memory-object.ts MapHoldings). */
  readonly holdings: readonly SharedArrayBuffer[];
  /**
   * The memory references held by out-of-line regions of the messages on each node, indexed by
   * node, in the same form (its `maps` word counting messages' regions).
   */
  readonly messageHoldings: readonly SharedArrayBuffer[];
  /**
   * The message fast path (workers/channel.ts; layouts in ring.ts and doorbell.ts there):
   * `rings[from * nodes + to]` carries kernel messages from node `from` to node `to` (null where
   * from === to); one doorbell for all nodes.
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
  /**
   * The fork was made by a task's code on the parent's node (context.mach), not the host: the
   * child's node answers through the parent's node (NodeAdopted), where that code waits.
   */
  readonly answerHere?: boolean;
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

/**
 * The child's node built the child of fork call `id` for a teleport or a fork task code made
 * (the answer comes through the parent's node); the parent's node forgets that image. A plain
 * fork sends none: its claim word tells the parent's node (ForkHandoff).
 */
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

/** A ledger on the wire: its words live in `sab` (layout: actors/kern/ledger.ts). */
export interface LedgerRef {
  readonly id: number;
  readonly sab: SharedArrayBuffer;
}

/** task_create's two ledgers: wired, then paged. */
export type TaskLedgers = readonly [wired: LedgerRef, paged: LedgerRef];

/**
 * Everything a child task is made of, captured atomically on the parent's node. The map is flat
 * so 10,000 regions cross a thread as one typed array, and each memory object's buffer crosses
 * once however many entries map it:
 *
 *   entries: | start | end | offset | protection | maxProtection | inheritance | object | ... (7 words each)
 *   objects: | home | slot | generation | ...                              (3 words each)
 *   buffers: [object 0's SharedArrayBuffer or null, object 1's, ...]  (null: resident there)
 *
 * Each object already holds one reference taken for the child, which the child's map adopts.
 * Written and read by actors/kern/task-fork.ts (TaskImageWriter; TaskFork.adopt reads it in place).
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
  /** Exception ports by type (index: EXC_*), null where none; absent: none at all. */
  readonly exceptions?: readonly (ExceptionEntry | null)[];
}

/** One exception type's handler: a send right, its behavior (EXCEPTION_*) and state flavor. */
export interface ExceptionEntry { readonly port: PortId; readonly behavior: number; readonly flavor: number }

/** task_/thread_get_exception_ports' out-values (names in the target task's space). */
export interface ExceptionPortsReply {
  readonly kr: number;
  readonly old_exception_masks: number[];
  readonly old_exception_ports: number[];
  readonly old_behaviors: number[];
  readonly old_flavors: number[];
  readonly old_exception_count: number;
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
  /** The child's kernel port, with `child` (for a send right to it in a calling task's space). */
  readonly childPort?: PortId;
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

/** What mach_msg answers: a received message, or MACH_RCV_TOO_LARGE's size. */
export interface MachMsgReply { kr: number; msg?: MachMsgReceived; size?: number }

/** The control-plane interface every node exposes, called by NodeCall (from the host or a peer). */
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
  /**
   * mach_msg: send `msg` (MACH_SEND_MSG), then receive on `rcvName` (MACH_RCV_MSG). `abort`, an
   * AbortSignal, comes only from a thread's call gate on the node (typed loosely so the published
   * types need no DOM or @types/node).
   */
  machMsg(task: TaskId, msg: MachMsgSend | null, option: number, rcvName: number, timeout: number, rcvSize?: number, abort?: unknown):
    MachMsgReply | Promise<MachMsgReply>;
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
  /** host_statistics: this node's tasks, threads, ports, regions and memory (NodeStatistics). */
  hostStatistics(): NodeStatistics;

  /** Thread routines (kern/thread-routines.ts); a thread's node is its task's. */
  threadCreate(task: TaskId, flavor: number | null, state: ThreadStateJs | null): ThreadReply | Promise<ThreadReply>;
  threadSetState(thread: ThreadId, flavor: number, state: ThreadStateJs): Promise<CodeKrReply>;
  threadGetState(thread: ThreadId, flavor: number): { kr: number; state?: ThreadStateJs };
  threadResume(thread: ThreadId): KrReply;
  threadSuspend(thread: ThreadId): KrReply;
  threadTerminate(thread: ThreadId): KrReply;
  threadAbort(thread: ThreadId): KrReply;
  threadInfo(thread: ThreadId, flavor: number): { kr: number; info?: ThreadBasicInfo };
  /** Settles when the thread ends: its result, or why it failed (KERN_FAILURE, KERN_TERMINATED). */
  threadJoin(thread: ThreadId): Promise<{ kr: number; value?: unknown; error?: SerializedError }>;
  taskThreads(task: TaskId): { kr: number; threads?: ThreadRef[] };

  /** Exception ports (kern/exception-routines.ts): names in the task's (the thread's task's) space. */
  taskSetExceptionPorts(task: TaskId, mask: number, name: number, behavior: number, flavor: number): KrReply;
  taskGetExceptionPorts(task: TaskId, mask: number): ExceptionPortsReply;
  taskSwapExceptionPorts(task: TaskId, mask: number, name: number, behavior: number, flavor: number): ExceptionPortsReply;
  threadSetExceptionPorts(thread: ThreadId, mask: number, name: number, behavior: number, flavor: number): KrReply;
  threadGetExceptionPorts(thread: ThreadId, mask: number): ExceptionPortsReply;
  threadSwapExceptionPorts(thread: ThreadId, mask: number, name: number, behavior: number, flavor: number): ExceptionPortsReply;
  /** Settles when the task ends: KERN_TERMINATED, or KERN_FAILURE with the exception no handler took. */
  taskExited(task: TaskId): Promise<TaskExit>;
}

/** How a task ended (taskExited). */
export interface TaskExit {
  readonly kr: number;
  readonly error?: SerializedError;
  readonly exception?: number;
  readonly code?: readonly number[];
  readonly thread?: ThreadId;
}

/** A thread, with its kernel port (for a name in a task's space). */
export interface ThreadRef { readonly thread: ThreadId; readonly port: PortId }
/** A refusal that names its cause (module, export, argument), or success. */
export type CodeKrReply = { kr: number; error?: SerializedError };
export type ThreadReply = CodeKrReply & { thread?: ThreadRef };

/** What a NodeApi routine resolves to. */
export type Reply<K extends keyof NodeApi> = Awaited<ReturnType<NodeApi[K]>>;

/** A task routine's arguments after its first (the task), which a handle or facade supplies. */
export type RestParameters<F> = F extends (first: never, ...rest: infer R) => unknown ? R : never;

/** A non-Mach failure crossing the wire (a thrown error in user code run by taskExecute; errors.ts serializeError). */
export interface SerializedError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string;
}
