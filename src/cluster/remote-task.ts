/**
 * Task creation across processes (issue 12 items 1 and 3): norma_task_create / clone / teleport
 * (and task_create) whose parent lives in one process and child in another. The parent's
 * process captures the child's image (capture), the child's process builds it (build), then the
 * parent's process settles: a teleport's parent is terminated only then, and a build that failed
 * releases everything captured. Regions the child copies travel as bytes; regions it shares
 * stay homed in the parent's process, kept alive by a holder task there (remote-memory.ts).
 */
import {
  EXC_MASK_ALL, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_PROTECTION_FAILURE, KERN_SUCCESS, MACH_MSG_TYPE_MOVE_SEND, MACH_PORT_DEAD,
  MACH_PORT_NULL, TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT, VM_INHERIT_SHARE,
} from '../shared/constants.js';
import type { ForkMode, RegionInfo } from '../shared/protocol.js';
import { taskIdNode, type NodeId, type TaskId } from '../shared/types.js';
import type { ClusterLink, LocalKernel, ProcessIndex } from './link.js';
import { RemoteMemory, type MemoryReply, type Piece } from './remote-memory.js';
import { buildChild, type RightTranslator } from './remote-build.js';
import type { MemoryRequest, WireRegion, WireRight, WireTaskImage } from './wire.js';

/** The special ports a child inherits across processes (MACH.md §4: not the host port, which is its node's). */
export const CROSS_SPECIALS = [TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT] as const;

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
  #nextCapture = 1;
  #bytesCopied = 0;

  constructor(kernel: LocalKernel, link: ClusterLink, rights: RightTranslator) {
    this.#kernel = kernel;
    this.#link = link;
    this.#rights = rights;
    this.#memory = new RemoteMemory(kernel, (proc, request) => this.#ask(proc, request));
    link.serve('memory', { request: (from, payload) => this.#serve(from, payload as MemoryRequest) });
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
    const captured = await this.#ask(parent.proc, { op: 'capture', node: parent.node, task: parent.task, mode, inheritMemory });
    if (captured.kr !== KERN_SUCCESS) return { kr: captured.kr };
    const image = captured.image!;
    const built = await this.#ask(child.proc, { op: 'build', node: child.node, home: parent.proc, image });
    const ok = built.kr === KERN_SUCCESS;
    // A parent's process that died meanwhile took its parent along; the child (if built) lives on.
    await this.#ask(parent.proc, { op: 'settle', capture: image.capture, built: ok, child: child.proc });
    return ok ? { kr: KERN_SUCCESS, child: built.child! } : { kr: built.kr };
  }

  /**
   * For this process's kernel: runs `method` when it is about memory homed in another process
   * (see RemoteMemory.route); undefined when the caller should run it locally.
   */
  route(node: number, method: string, args: readonly unknown[]): Promise<Reply> | undefined {
    return this.#memory.route(node, method, args);
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

  #ask(proc: ProcessIndex, request: MemoryRequest): Promise<Reply> {
    if (proc === this.#link.self) return this.#serve(proc, request);
    return this.#link.request(proc, 'memory', request) as Promise<Reply>;
  }

  async #serve(from: ProcessIndex, request: MemoryRequest): Promise<Reply> {
    try {
      switch (request?.op) {
        case 'capture': return await this.#capture(request.node, request.task as TaskId, request.mode, request.inheritMemory);
        case 'build': return await this.#build(request.node, request.home, request.image);
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

  /**
   * In the parent's process: a snapshot task forked from the parent on its own node in one
   * step ('create': COPY regions copied then, SHARE shared, NONE absent; 'clone' for clone and
   * teleport: everything shared). Copied regions are read from it and dropped; what stays is
   * what the child shares, and the snapshot keeps it alive as the holder. The snapshot also
   * inherited the parent's ports, so they are taken from it: the parent's space is not touched.
   */
  async #capture(node: number, task: TaskId, mode: ForkMode, inheritMemory: boolean): Promise<Reply> {
    if (!this.#localNode(node) || !Number.isInteger(task) || taskIdNode(task) !== node || !MODES.includes(mode) ||
        typeof inheritMemory !== 'boolean') {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const k = this.#kernel;
    const info = await k.request(node, 'taskInfo', task);
    if (info.info === undefined) return { kr: info.kr };
    let teleported: TaskId | undefined;
    // Unshared memory of a teleport's parent may simply be copied: no one else can see it. Its
    // threads are stopped first, so what is copied is what the child gets.
    let sharedByOthers: RegionInfo[] = [];
    if (mode === 'teleport') {
      const suspended = await k.request(node, 'taskSuspend', task);
      if (suspended.kr !== KERN_SUCCESS) return suspended;
      teleported = task;
      sharedByOthers = (await k.request(node, 'vmRegions', task)).regions?.filter((region) => region.shared) ?? [];
    }
    const forked = await k.request(node, 'taskFork', task, mode === 'create' ? 'create' : 'clone', inheritMemory, node, null);
    if (forked.child === undefined) {
      if (teleported !== undefined) await k.request(node, 'taskResume', teleported);
      return { kr: forked.kr };
    }
    const snapshot = forked.child;
    const drawn = await this.#draw(node, snapshot, mode, sharedByOthers);
    if (drawn.regions === undefined) {
      await k.request(node, 'taskTerminate', snapshot);
      if (teleported !== undefined) await k.request(node, 'taskResume', teleported);
      return { kr: drawn.kr };
    }
    const { regions } = drawn;
    const shared = drawn.shared === true;
    const ports = await this.#exportPorts(node, snapshot);
    const capture = this.#nextCapture++;
    this.#captures.set(capture, { node, snapshot, shared, ...(teleported === undefined ? {} : { teleported }) });
    const image: WireTaskImage = {
      capture, token: info.info.securityToken, regions, ...ports,
      ...(shared ? { holder: { node, task: snapshot } } : {}),
    };
    return { kr: KERN_SUCCESS, image };
  }

  /**
   * The snapshot's regions as the child gets them: those it shares stay mapped there (the
   * holder, its protection raised to the maximum: the child's process checks the child's own);
   * the others are read out and unmapped. A region whose maximum protection has no read goes as
   * zeros: nobody can ever read it. Any other failure (a node down) fails the capture.
   */
  async #draw(node: NodeId, snapshot: TaskId, mode: ForkMode, sharedByOthers: readonly RegionInfo[]):
    Promise<{ kr: number; regions?: WireRegion[]; shared?: boolean }> {
    const k = this.#kernel;
    const listed = await k.request(node, 'vmRegions', snapshot);
    if (listed.regions === undefined) return { kr: listed.kr };
    const regions: WireRegion[] = [];
    let shared = false;
    for (const region of listed.regions) {
      const keep = mode === 'clone' || (mode === 'create' && region.inheritance === VM_INHERIT_SHARE) ||
        (mode === 'teleport' && sharedByOthers.some((other) => other.address <= region.address &&
          region.address < other.address + other.size));
      const raised = await k.request(node, 'vmProtect', snapshot, region.address, region.size, false, region.maxProtection);
      if (raised.kr !== KERN_SUCCESS) return raised;
      const attributes = {
        address: region.address, size: region.size, protection: region.protection,
        maxProtection: region.maxProtection, inheritance: region.inheritance,
      };
      if (keep) {
        shared = true;
        regions.push({ ...attributes, shared: true });
        continue;
      }
      const read = await k.request(node, 'vmRead', snapshot, region.address, region.size);
      if (read.data === undefined && read.kr !== KERN_PROTECTION_FAILURE) return { kr: read.kr };
      regions.push(read.data === undefined ? attributes : { ...attributes, data: read.data });
      const unmapped = await k.request(node, 'vmDeallocate', snapshot, region.address, region.size);
      if (unmapped.kr !== KERN_SUCCESS) return unmapped;
    }
    return { kr: KERN_SUCCESS, regions, shared };
  }

  /** The snapshot's inherited ports as wire rights, moved out of its space. */
  async #exportPorts(node: NodeId, snapshot: TaskId): Promise<Pick<WireTaskImage, 'special' | 'registered' | 'exceptions'>> {
    const k = this.#kernel;
    const take = async (name: number): Promise<WireRight> => {
      if (name === MACH_PORT_NULL || name === MACH_PORT_DEAD) return { kind: 'dead' };
      const extracted = await k.request(node, 'portExtractRight', snapshot, name, MACH_MSG_TYPE_MOVE_SEND);
      return extracted.right === undefined ? { kind: 'dead' } : this.#rights.exportRight(extracted.right);
    };
    const special: [number, WireRight][] = [];
    for (const which of CROSS_SPECIALS) {
      special.push([which, await take((await k.request(node, 'taskGetSpecialPort', snapshot, which)).name)]);
    }
    const registered: WireRight[] = [];
    for (const name of (await k.request(node, 'portsLookup', snapshot)).names ?? []) registered.push(await take(name));
    const exceptions: WireTaskImage['exceptions'][number][] = [];
    const handlers = await k.request(node, 'taskGetExceptionPorts', snapshot, EXC_MASK_ALL);
    for (let index = 0; index < (handlers.old_exception_count ?? 0); index++) {
      exceptions.push({
        mask: handlers.old_exception_masks[index]!, right: await take(handlers.old_exception_ports[index]!),
        behavior: handlers.old_behaviors[index]!, flavor: handlers.old_flavors[index]!,
      });
    }
    return { special, registered, exceptions };
  }

  /** In the child's process: the child, from this process's bootstrap task (its root ledgers). */
  async #build(node: number, home: ProcessIndex, image: WireTaskImage): Promise<Reply> {
    if (!this.#localNode(node)) return { kr: KERN_INVALID_ARGUMENT };
    const built = await buildChild(this.#kernel, this.#rights, node, image);
    if (built.kr !== KERN_SUCCESS || built.child === undefined) return { kr: built.kr };
    const child = built.child;
    this.#bytesCopied += built.bytesCopied;
    const pieces: Piece[] = image.holder === undefined ? [] : image.regions.filter((region) => region.shared).map((region) => ({
      start: region.address, end: region.address + region.size, protection: region.protection,
      maxProtection: region.maxProtection, inheritance: region.inheritance, home,
      holderNode: image.holder!.node, holder: image.holder!.task,
    }));
    this.#memory.add(child, node, pieces);
    if (pieces.length > 0) {
      this.#exits.set(child, this.#kernel.request(node, 'taskExited', child).then(() => this.#childGone(child)));
    }
    return { kr: KERN_SUCCESS, child };
  }

  /** A child with remote ranges ended: its holders in their home processes are released. */
  async #childGone(child: TaskId): Promise<void> {
    const seen = new Set<string>();
    await Promise.all(this.#memory.forget(child).map((piece) => {
      const key = `${piece.home}:${piece.holder}`;
      if (seen.has(key)) return undefined;
      seen.add(key);
      return this.#ask(piece.home, { op: 'release', node: piece.holderNode, holder: piece.holder });
    }));
    this.#exits.delete(child);
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
