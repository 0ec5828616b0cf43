/**
 * The cluster's message shapes: what crosses between processes over a ClusterLink (link.ts).
 * Each service owns a section. Nothing here is a SharedArrayBuffer: payloads are copied.
 */
/** A process of the cluster: 0 booted the kernel, 1.. joined it. */
export type ProcessIndex = number;

/** The services a process offers its peers. */
export type ClusterService = 'kernel' | 'gateway' | 'memory';

/**
 * A port right on its way to another process. `home` is the process whose gateway holds the
 * right the wire names, under `export` (a name in that gateway's space); the receiving process
 * turns it into a right of its own (a proxy port for send and send-once; a new port for a
 * receive right, the old one forwarding to it). A dead right carries neither.
 */
export type WireRight =
  | { readonly kind: 'send' | 'send-once' | 'receive'; readonly home: ProcessIndex; readonly export: number }
  | { readonly kind: 'dead' };

// ---- 'gateway': ports across processes (gateway.ts) ----

/** A message forwarded to a port's home: its rights as wire rights, its out-of-line memory as bytes. */
export interface WireMessage {
  readonly id: number;
  readonly body: Uint8Array;
  /** The reply right (msgh_local_port), or null for none. */
  readonly reply: WireRight | null;
  readonly ports: readonly WireRight[];
  readonly ool: readonly Uint8Array[];
}

/** One-way frames of the 'gateway' service. `export` names a right the receiving process's gateway holds. */
export type GatewayFrame =
  /** A message for export `export` (a send right; `once`: a send-once right, used up by it). */
  | { readonly op: 'deliver'; readonly export: number; readonly once: boolean; readonly msg: WireMessage }
  /** `count` messages for the sender's export `export` reached the real port: that many credits back. */
  | { readonly op: 'ack'; readonly export: number; readonly count: number }
  /**
   * The sender drops `count` of the `kind` rights it was granted for `export`: its proxy's
   * no-senders, or a right in a message it refused (a send-once right then sends its
   * notification, a receive right's port dies).
   */
  | { readonly op: 'release'; readonly export: number; readonly count: number; readonly kind: 'send' | 'send-once' | 'receive' }
  /** The sender's export `export` died: proxies for it become dead. */
  | { readonly op: 'dead'; readonly export: number }
  /** The receive right granted under `export` lives on as the sender's port exported under `to`. */
  | { readonly op: 'migrated'; readonly export: number; readonly to: number }
  /**
   * A location hint: the port behind the sender's export `export` lives in `home` under export
   * `to`, which `home` has granted the receiver one send right for.
   */
  | { readonly op: 'moved'; readonly export: number; readonly home: ProcessIndex; readonly to: number }
  /**
   * Process `for` switches to a port's new home: once every message sent to export `export`
   * before this frame reached the port (through whatever forwarders), tell `for` so.
   */
  | { readonly op: 'fence'; readonly export: number; readonly for: ProcessIndex; readonly seq: number }
  /** The receiver's fence `seq` reached the port (exported here as `export`). */
  | { readonly op: 'fenced'; readonly export: number; readonly seq: number };

/** Requests of the 'gateway' service; the answer is `{ kr }`. */
export type GatewayRequest =
  /** One more send right for `export`, counted for process `to` (a right passed on to a third process). */
  { readonly op: 'grant'; readonly export: number; readonly to: ProcessIndex };

// ---- 'kernel': the control plane (cluster.ts) ----

/** A right in a forwarded call's arguments or answer (portInsertRight's poly, portExtractRight's right). */
export interface RightOnWire { readonly wireRight: WireRight }

/** What process 0 asks of the process that hosts a node; node indexes are that process's own. */
export type KernelRequest =
  /** Answers once the process's local kernel and its cluster parts run. */
  | { readonly op: 'ready' }
  /** One NodeApi routine on `node`; RightInTransit values travel as RightOnWire. */
  | { readonly op: 'call'; readonly node: number; readonly method: string; readonly args: readonly unknown[] }
  /** A fork whose parent and child both live in that process. */
  | { readonly op: 'fork'; readonly node: number; readonly parent: number; readonly mode: 'create' | 'clone' | 'teleport';
      readonly inheritMemory: boolean; readonly childNode: number }
  /** Test hook: kill local node `node`'s worker as a crash would. */
  | { readonly op: 'crash'; readonly node: number }
  /** That process's cluster figures (ClusterProcessStatistics, less process, nodes and down). */
  | { readonly op: 'statistics' };

/** One-way, process 0 to the others: the kernel shuts down; stop the local kernel. */
export type KernelMessage = { readonly op: 'shutdown' };

/** What process 0 hands each process it recruits (transport.ts carries it). */
export interface Assignment {
  readonly shares: readonly number[];
  readonly pageSize: number;
}

// ---- memory: remote fork and remote memory (remote-task.ts, remote-memory.ts) ----

/**
 * One region of a child's image as it crosses: its attributes as the parent's, and either its
 * bytes (`data`: a private copy) or `shared` (it stays homed in the image's process, reached
 * through the holder task there, which maps it at the same address).
 */
export interface WireRegion {
  readonly address: number;
  readonly size: number;
  readonly protection: number;
  readonly maxProtection: number;
  readonly inheritance: number;
  readonly data?: Uint8Array;
  readonly shared?: true;
}

/** A child's image, captured in its parent's process (capture answers it). */
export interface WireTaskImage {
  /** The capture in the parent's process, for build's outcome (settle or drop). */
  readonly capture: number;
  readonly token: readonly [number, number];
  readonly regions: readonly WireRegion[];
  /** The holder task keeping the shared regions' memory objects, on a node local to the parent's process. */
  readonly holder?: { readonly node: number; readonly task: number };
  /** Inherited special ports (which, right), dead or absent where the parent has none. */
  readonly special: readonly (readonly [number, WireRight])[];
  readonly registered: readonly WireRight[];
  /** Exception ports: mask, right, behavior, flavor. */
  readonly exceptions: readonly { readonly mask: number; readonly right: WireRight; readonly behavior: number; readonly flavor: number }[];
}

/** Requests to a process's 'memory' service; every answer is `{ kr, ... }`. */
export type MemoryRequest =
  | { readonly op: 'capture'; readonly node: number; readonly task: number; readonly mode: 'create' | 'clone' | 'teleport'; readonly inheritMemory: boolean }
  | { readonly op: 'build'; readonly node: number; readonly home: ProcessIndex; readonly image: WireTaskImage }
  /** The child exists (`built`: a teleport's parent is terminated) or never will (what was captured is released). */
  | { readonly op: 'settle'; readonly capture: number; readonly built: boolean; readonly child?: ProcessIndex }
  | { readonly op: 'read'; readonly node: number; readonly holder: number; readonly address: number; readonly size: number }
  | { readonly op: 'write'; readonly node: number; readonly holder: number; readonly address: number; readonly data: Uint8Array }
  | { readonly op: 'regions'; readonly node: number; readonly holder: number }
  | { readonly op: 'unmap'; readonly node: number; readonly holder: number; readonly address: number; readonly size: number }
  | { readonly op: 'release'; readonly node: number; readonly holder: number };
