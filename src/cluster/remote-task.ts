/**
 * Task creation across processes (issue 12 items 1 and 3): norma_task_create / clone / teleport
 * (and task_create) whose parent lives in one process and child in another. The parent's
 * process captures the child's image (capture), the child's process builds it (build), then the
 * parent's process settles: a teleport's parent is terminated only then, and a build that failed
 * releases everything captured. Regions the child copies travel as bytes; regions it shares
 * stay homed in the parent's process, kept alive by a holder task there (remote-memory.ts).
 */
import {
  KERN_ABORTED, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_NOT_SUPPORTED, KERN_PROTECTION_FAILURE, KERN_SUCCESS, VM_INHERIT_COPY,
  VM_INHERIT_SHARE,
} from '../shared/constants.js';
import type { ForkMode, TaskLedgers } from '../shared/protocol.js';
import { taskIdNode, type NodeId, type TaskId } from '../shared/types.js';
import type { ClusterLink, LocalKernel, ProcessIndex } from './link.js';
import { RemoteMemory, type MemoryReply, type Piece } from './remote-memory.js';
import { fillChild, layRegion, reserveChild, type RightTranslator } from './remote-build.js';
import { captureImage } from './remote-capture.js';
import type { MemoryRequest, WireRegion, WireTaskImage } from './wire.js';

export { CROSS_SPECIALS } from './remote-capture.js';

export type { RightTranslator };

const MODES: readonly ForkMode[] = ['create', 'clone', 'teleport'];

export interface RemoteTaskStatistics {
  /** Holder tasks this process keeps for children in other processes. */
  readonly holders: number;
  /** Ranges of this process's tasks whose memory is homed elsewhere. */
  readonly remoteRanges: number;
  /** Bytes copied into children built here. */
  readonly bytesCopied: number;
  /** Calls route() took over. */
  readonly routedCalls: number;
}

/** A capture waiting for its build's outcome, in the parent's process. */
interface Capture { readonly node: NodeId; readonly snapshot: TaskId; readonly shared: boolean; readonly teleported?: TaskId }

type Reply = MemoryReply;

/**
 * The 'memory' service's requests as this file sends them: wire.ts's, a capture named by a
 * ticket (so the caller can cancel it), a build into a reserved child, and the reservation's
 * own steps (the child-to-be made first; watched until built, abandoned, or its node down).
 */
type TaskRequest =
  | Exclude<MemoryRequest, { op: 'capture' | 'build' }>
  | (Extract<MemoryRequest, { op: 'capture' }> & { readonly ticket: number })
  | (Extract<MemoryRequest, { op: 'build' }> & { readonly child: number })
  | { readonly op: 'reserve'; readonly node: number }
  | { readonly op: 'watch' | 'abandon'; readonly child: number }
  | { readonly op: 'cancel'; readonly ticket: number };

type Ledgers = TaskLedgers | null;

export class RemoteTasks {
  readonly #kernel: LocalKernel;
  readonly #link: ClusterLink;
  readonly #rights: RightTranslator;
  readonly #memory: RemoteMemory;
  readonly #captures = new Map<number, Capture>();
  /** Holders kept here: holder task -> its node and the process of the child it serves. */
  readonly #holders = new Map<TaskId, { node: NodeId; child: ProcessIndex }>();
  /** Children built here with remote ranges: settles once their holders are released after they end. */
  readonly #exits = new Map<TaskId, Promise<void>>();
  /** Children reserved here, not yet built: settling `ended` answers their watch. */
  readonly #reserved = new Map<TaskId, { node: NodeId; end: () => void; ended: Promise<void> }>();
  /** Captures running here, by caller and ticket: true once cancelled. */
  readonly #capturing = new Map<string, boolean>();
  #nextCapture = 1;
  #nextTicket = 1;
  #bytesCopied = 0;

  constructor(kernel: LocalKernel, link: ClusterLink, rights: RightTranslator) {
    this.#kernel = kernel;
    this.#link = link;
    this.#rights = rights;
    this.#memory = new RemoteMemory(kernel, (proc, request) => this.#ask(proc, request as TaskRequest));
    link.serve('memory', { request: (from, payload) => this.#serve(from, payload as TaskRequest) });
    link.onPeerDown((proc) => void this.#peerDown(proc));
  }

  /**
   * A child of `parent` (a task on node `parent.node`, local to process `parent.proc`) on node
   * `child.node` of process `child.proc`, by `mode` (MACH.md §4). Callable from any process.
   * Returns the child's TaskId in its process; KERN_INVALID_ARGUMENT for a bad parent, mode,
   * flag, process or node (nothing created); KERN_NODE_DOWN when either process is or goes down
   * (what was captured is released; a teleport's parent keeps running); otherwise what the
   * parent's or child's kernel answered.
   */
  async forkAcross(parent: { proc: ProcessIndex; node: number; task: TaskId }, mode: ForkMode, inheritMemory: boolean,
    child: { proc: ProcessIndex; node: number }): Promise<{ kr: number; child?: TaskId }> {
    const procOk = (proc: unknown) => Number.isInteger(proc) && (proc as number) >= 0 && (proc as number) < this.#link.processes;
    if (!procOk(parent.proc) || !procOk(child.proc) || parent.proc === child.proc || !MODES.includes(mode) ||
        typeof inheritMemory !== 'boolean') {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    if (this.#link.isDown(parent.proc) || this.#link.isDown(child.proc)) return { kr: KERN_NODE_DOWN };
    // The child-to-be first: its node is then watched while the parent's node captures, so a
    // child's node (or process) that goes down fails the call at once, as in one process, even
    // when the capture waits behind code holding the parent's node.
    const reserved = await this.#ask(child.proc, { op: 'reserve', node: child.node });
    if (reserved.child === undefined) return { kr: reserved.kr };
    const abandon = () => this.#ask(child.proc, { op: 'abandon', child: reserved.child! });
    const ticket = this.#nextTicket++;
    const capturing = this.#ask(parent.proc, { op: 'capture', node: parent.node, task: parent.task, mode, inheritMemory, ticket });
    const watched = this.#ask(child.proc, { op: 'watch', child: reserved.child });
    const first = await Promise.race([capturing.then((captured) => ({ captured })), watched.then((lost) => ({ lost }))]);
    if ('lost' in first) {
      await this.#ask(parent.proc, { op: 'cancel', ticket });
      // A capture that ends anyway is released then; the call does not wait for it.
      void capturing.then((late) => late.image === undefined ? undefined :
        this.#ask(parent.proc, { op: 'settle', capture: late.image.capture, built: false, child: child.proc }));
      await abandon();
      return { kr: first.lost.kr === KERN_SUCCESS ? KERN_ABORTED : first.lost.kr };
    }
    const { captured } = first;
    if (captured.image === undefined) {
      await abandon();
      return { kr: captured.kr === KERN_SUCCESS ? KERN_INVALID_ARGUMENT : captured.kr };
    }
    const image = captured.image;
    const built = await this.#ask(child.proc, { op: 'build', node: child.node, home: parent.proc, child: reserved.child, image });
    const ok = built.kr === KERN_SUCCESS;
    // A parent's process that died meanwhile took its parent along; the child (if built) lives on.
    await this.#ask(parent.proc, { op: 'settle', capture: image.capture, built: ok, child: child.proc });
    return ok ? { kr: KERN_SUCCESS, child: reserved.child } : { kr: built.kr };
  }

  /**
   * A fork of `parent` (on local node `node`, with memory homed in another process) onto local
   * node `childNode`: the local fork as usual for its own memory; of its remote ranges, the
   * child shares (clone, teleport, and create's VM_INHERIT_SHARE ones: the same holder) or gets
   * a private copy (create's VM_INHERIT_COPY ones, read from the home first) or nothing (NONE).
   * For a parent without remote memory it is the plain local fork. Codes: the local fork's,
   * KERN_INVALID_ARGUMENT for a bad node or mode, or what the home answered for a copy.
   */
  async forkHere(node: NodeId, parent: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId, ledgers: Ledgers = null):
    Promise<{ kr: number; child?: TaskId }> {
    if (!this.#localNode(node) || !this.#localNode(childNode) || !MODES.includes(mode) || typeof inheritMemory !== 'boolean') {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const k = this.#kernel;
    const pieces = inheritMemory ? this.#memory.pieces(parent) : [];
    const shared = pieces.filter((piece) => mode !== 'create' || piece.inheritance === VM_INHERIT_SHARE);
    const copies: WireRegion[] = [];
    for (const piece of mode === 'create' ? pieces.filter((each) => each.inheritance === VM_INHERIT_COPY) : []) {
      const size = piece.end - piece.start;
      const read = await this.#ask(piece.home, { op: 'read', node: piece.holderNode, holder: piece.holder, address: piece.start, size });
      // As a capture does: memory nobody may read goes as zeros.
      if (read.data === undefined && read.kr !== KERN_PROTECTION_FAILURE) return { kr: read.kr };
      const { protection, maxProtection, inheritance } = piece;
      copies.push({ address: piece.start, size, protection, maxProtection, inheritance, ...(read.data === undefined ? {} : { data: read.data }) });
    }
    this.#memory.retain(shared);
    const forked = await k.request(node, 'taskFork', parent, mode, inheritMemory, childNode, ledgers);
    const child = forked.child;
    let kr = forked.kr;
    if (child !== undefined && child !== parent) {
      // The local fork copied the placeholders of the copied ranges: the real bytes replace them.
      for (const region of copies) {
        if (kr !== KERN_SUCCESS) break;
        kr = (await k.request(childNode, 'vmDeallocate', child, region.address, region.size)).kr;
        if (kr === KERN_SUCCESS) kr = await layRegion(k, childNode, child, region);
      }
      if (kr === KERN_SUCCESS) this.#track(child, childNode, shared);
      else await k.request(childNode, 'taskTerminate', child);
    }
    await this.#releaseAll(this.#memory.unretain(shared));
    return child === undefined || kr !== KERN_SUCCESS ? { kr } : { kr, child };
  }

  /**
   * For this process's kernel: runs `method` when it is about memory homed in another process
   * (see RemoteMemory.route); undefined when the caller should run it locally.
   */
  route(node: number, method: string, args: readonly unknown[]): Promise<Reply> | undefined {
    const task = args[0] as TaskId;
    if (!this.#memory.has(task) || !this.#localNode(node) || taskIdNode(task) !== node) return this.#memory.route(node, method, args);
    if (method === 'taskTerminate') return this.#terminate(node, task);
    if (method === 'taskFork') {
      const [, mode, inheritMemory, childNode, ledgers] = args;
      return this.forkHere(node, task, mode as ForkMode, inheritMemory as boolean, childNode as NodeId, (ledgers ?? null) as Ledgers);
    }
    return this.#memory.route(node, method, args);
  }

  /** task_terminate of a task with remote ranges answers once their holders were released. */
  async #terminate(node: NodeId, task: TaskId): Promise<Reply> {
    const reply = await this.#kernel.request(node, 'taskTerminate', task);
    if (reply.kr === KERN_SUCCESS) await this.released(task);
    return reply;
  }

  /**
   * Settles once child `child` (built here) has ended and the holders of its remote ranges in
   * their home processes were released; at once for a child without remote ranges.
   */
  released(child: TaskId): Promise<void> {
    return this.#exits.get(child) ?? Promise.resolve();
  }

  /** Whether task `task` of this process maps memory homed in another process (route() handles its vm calls). */
  hasRemoteMemory(task: TaskId): boolean { return this.#memory.has(task); }

  statistics(): RemoteTaskStatistics {
    return {
      holders: this.#holders.size, remoteRanges: this.#memory.pieceCount, bytesCopied: this.#bytesCopied,
      routedCalls: this.#memory.routedCalls,
    };
  }

  #ask(proc: ProcessIndex, request: TaskRequest): Promise<Reply> {
    if (proc === this.#link.self) return this.#serve(proc, request);
    return this.#link.request(proc, 'memory', request) as Promise<Reply>;
  }

  async #serve(from: ProcessIndex, request: TaskRequest): Promise<Reply> {
    try {
      switch (request?.op) {
        case 'reserve': return await this.#reserve(request.node);
        case 'watch': return await this.#watch(request.child as TaskId);
        case 'abandon': return await this.#abandon(request.child as TaskId);
        case 'capture': return await this.#captureTicket(`${from}:${request.ticket}`, request);
        case 'cancel': return this.#cancel(`${from}:${request.ticket}`);
        case 'build': return await this.#build(request.node, request.home, request.child as TaskId, request.image);
        case 'settle': return await this.#settle(request.capture, request.built, request.child ?? from);
        default: return await this.#home(from, request);
      }
    } catch {
      // A malformed request from a peer (a request handler must answer, never reject).
      return { kr: KERN_INVALID_ARGUMENT };
    }
  }

  #localNode(node: unknown): node is NodeId {
    return Number.isInteger(node) && (node as number) >= 0 && (node as number) < this.#kernel.localNodes;
  }

  /** A capture the caller may cancel (its child's side went down) until it answers. */
  async #captureTicket(key: string, request: Extract<TaskRequest, { op: 'capture' }>): Promise<Reply> {
    this.#capturing.set(key, false);
    try {
      return await this.#capture(request.node, request.task as TaskId, request.mode, request.inheritMemory,
        () => this.#capturing.get(key) === true);
    } finally {
      this.#capturing.delete(key);
    }
  }

  #cancel(key: string): Reply {
    if (this.#capturing.has(key)) this.#capturing.set(key, true);
    return { kr: KERN_SUCCESS };
  }

  /**
   * In the parent's process: the image (remote-capture.ts), its snapshot kept until settled.
   * A task whose own memory is partly homed elsewhere is not forked across processes again:
   * its remote ranges would need a second home (KERN_NOT_SUPPORTED).
   */
  async #capture(node: number, task: TaskId, mode: ForkMode, inheritMemory: boolean, cancelled: () => boolean): Promise<Reply> {
    if (!this.#localNode(node) || !Number.isInteger(task) || taskIdNode(task) !== node || !MODES.includes(mode) ||
        typeof inheritMemory !== 'boolean') {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    if (this.#memory.has(task)) return { kr: KERN_NOT_SUPPORTED, why: `task ${task} maps memory homed in another process` };
    const captured = await captureImage(this.#kernel, this.#rights, node, task, mode, inheritMemory, cancelled);
    if (captured.image === undefined || captured.snapshot === undefined) return { kr: captured.kr };
    const { snapshot, teleported } = captured;
    const shared = captured.shared === true;
    const capture = this.#nextCapture++;
    this.#captures.set(capture, { node, snapshot, shared, ...(teleported === undefined ? {} : { teleported }) });
    return { kr: KERN_SUCCESS, image: { capture, ...captured.image, ...(shared ? { holder: { node, task: snapshot } } : {}) } };
  }

  /**
   * In the child's process: the child-to-be, an empty task from this process's bootstrap task
   * (so it counts against this process's root ledgers), kept until built or abandoned.
   */
  async #reserve(node: number): Promise<Reply> {
    if (!this.#localNode(node)) return { kr: KERN_INVALID_ARGUMENT };
    const reserved = await reserveChild(this.#kernel, node);
    if (reserved.child === undefined) return { kr: reserved.kr };
    let end!: () => void;
    const ended = new Promise<void>((resolve) => { end = resolve; });
    this.#reserved.set(reserved.child, { node, end, ended });
    return reserved;
  }

  /**
   * Answers once the reservation ends: KERN_SUCCESS when built or abandoned, KERN_NODE_DOWN
   * when its node went down first (KERN_ABORTED when the task ended otherwise).
   */
  async #watch(child: TaskId): Promise<Reply> {
    const held = this.#reserved.get(child);
    if (held === undefined) return { kr: KERN_SUCCESS };
    const exited = this.#kernel.request(held.node, 'taskExited', child)
      .then((exit) => ({ kr: exit.kr === KERN_NODE_DOWN ? KERN_NODE_DOWN : KERN_ABORTED }));
    return Promise.race([exited, held.ended.then(() => ({ kr: KERN_SUCCESS }))]);
  }

  async #abandon(child: TaskId): Promise<Reply> {
    const held = this.#reserved.get(child);
    if (held === undefined) return { kr: KERN_INVALID_ARGUMENT };
    this.#reserved.delete(child);
    held.end();
    return this.#kernel.request(held.node, 'taskTerminate', child);
  }

  /** In the child's process: the reserved child filled from the image (terminated on failure). */
  async #build(node: number, home: ProcessIndex, child: TaskId, image: WireTaskImage): Promise<Reply> {
    const held = this.#reserved.get(child);
    if (held === undefined || held.node !== node) return { kr: KERN_INVALID_ARGUMENT };
    this.#reserved.delete(child);
    const built = await fillChild(this.#kernel, this.#rights, held.node, child, image);
    held.end();
    if (built.kr !== KERN_SUCCESS) return { kr: built.kr };
    this.#bytesCopied += built.bytesCopied;
    const pieces: Piece[] = image.holder === undefined ? [] : image.regions.filter((region) => region.shared).map((region) => ({
      start: region.address, end: region.address + region.size, protection: region.protection,
      maxProtection: region.maxProtection, inheritance: region.inheritance, home,
      holderNode: image.holder!.node, holder: image.holder!.task,
    }));
    this.#track(child, held.node, pieces);
    return { kr: KERN_SUCCESS, child };
  }

  /** Task `task` maps `pieces`: routed from now on, and its holders released once it ends. */
  #track(task: TaskId, node: NodeId, pieces: Piece[]): void {
    if (pieces.length === 0) return;
    this.#memory.add(task, node, pieces);
    this.#exits.set(task, this.#kernel.request(node, 'taskExited', task).then(() => this.#childGone(task)));
  }

  /** A task with remote ranges ended: the holders no other task here uses are released in their home processes. */
  async #childGone(task: TaskId): Promise<void> {
    await this.#releaseAll(this.#memory.forget(task));
    this.#exits.delete(task);
  }

  async #releaseAll(holders: readonly Piece[]): Promise<void> {
    await Promise.all(holders.map((piece) => this.#ask(piece.home, { op: 'release', node: piece.holderNode, holder: piece.holder })));
  }

  /**
   * In the parent's process, once the build answered: with `built` the holder (if any) now
   * serves process `child` and a teleport's parent is terminated; otherwise the snapshot goes
   * and a teleport's parent runs again, as it was.
   */
  async #settle(capture: number, built: boolean, child: ProcessIndex): Promise<Reply> {
    const held = this.#captures.get(capture);
    if (held === undefined) return { kr: KERN_INVALID_ARGUMENT };
    this.#captures.delete(capture);
    const k = this.#kernel;
    if (built && held.shared && !this.#link.isDown(child)) this.#holders.set(held.snapshot, { node: held.node, child });
    else await k.request(held.node, 'taskTerminate', held.snapshot);
    if (held.teleported !== undefined) {
      await k.request(held.node, built ? 'taskTerminate' : 'taskResume', held.teleported);
    }
    return { kr: KERN_SUCCESS };
  }

  /** The home process's part: what a child's process asks of the holder serving it (and only it). */
  async #home(from: ProcessIndex, request: MemoryRequest): Promise<Reply> {
    if (!('holder' in request)) return { kr: KERN_INVALID_ARGUMENT };
    const holder = request.holder as TaskId;
    const held = this.#holders.get(holder);
    if (held === undefined || held.child !== from || held.node !== request.node) return { kr: KERN_INVALID_ARGUMENT };
    const k = this.#kernel;
    switch (request.op) {
      case 'read': return k.request(held.node, 'vmRead', holder, request.address, request.size);
      case 'write': return k.request(held.node, 'vmWrite', holder, request.address, request.data);
      case 'regions': return k.request(held.node, 'vmRegions', holder);
      case 'unmap': return k.request(held.node, 'vmDeallocate', holder, request.address, request.size);
      case 'release':
        this.#holders.delete(holder);
        return k.request(held.node, 'taskTerminate', holder);
      default: return { kr: KERN_INVALID_ARGUMENT };
    }
  }

  /** A process went down: the holders serving its children go (their memory is theirs no more). */
  async #peerDown(proc: ProcessIndex): Promise<void> {
    const gone = [...this.#holders].filter(([, held]) => held.child === proc);
    for (const [holder] of gone) this.#holders.delete(holder);
    await Promise.all(gone.map(([holder, held]) => this.#kernel.request(held.node, 'taskTerminate', holder)));
  }
}
