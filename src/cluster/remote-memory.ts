/**
 * The child's side of memory homed in another process (issue 12 item 3, "honest first step").
 * A region a child shares with its parent in another process is a placeholder here: allocated at
 * the same address with maximum protection VM_PROT_NONE, so no raw view and no thread of this
 * process can touch its (stale, zero) bytes. Each such range is recorded as a piece: the child's
 * own attributes (protection, maximum, inheritance: per mapping, as in Mach, so they live here)
 * and where the memory is, a holder task in the home process mapping it at the same address.
 * vm_read / vm_write / vm_copy on a piece go to the home process, which reads or writes the
 * holder's map, so both sides see one memory object and nothing silently diverges.
 */
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_PROTECTION_FAILURE, KERN_SUCCESS,
  VM_PROT_ALL, VM_PROT_READ, VM_PROT_WRITE,
} from '../shared/constants.js';
import type { RegionInfo } from '../shared/protocol.js';
import type { NodeId, TaskId } from '../shared/types.js';
import type { LocalKernel, ProcessIndex } from './link.js';
import type { MemoryRequest, WireTaskImage } from './wire.js';

/** A range of a child's map whose memory is homed in another process. */
export interface Piece {
  start: number;
  end: number;
  protection: number;
  maxProtection: number;
  inheritance: number;
  readonly home: ProcessIndex;
  readonly holderNode: number;
  readonly holder: number;
}

/** Part of a byte range: local to this process's map, or within a piece. */
interface Segment { readonly start: number; readonly end: number; readonly piece?: Piece }

/** What the 'memory' service and routed calls answer: `kr` and whatever else the call carries. */
export interface MemoryReply {
  readonly kr: number;
  readonly data?: Uint8Array;
  readonly region?: RegionInfo;
  readonly regions?: RegionInfo[];
  /** Why a call was refused, where the code alone would not say. */
  readonly why?: string;
  readonly image?: WireTaskImage;
  readonly child?: TaskId;
}
type Reply = MemoryReply;

export type Ask = (proc: ProcessIndex, request: MemoryRequest) => Promise<Reply>;

export class RemoteMemory {
  /** Pieces by task, in address order, with the node the task lives on. */
  readonly #tasks = new Map<TaskId, { node: NodeId; pieces: Piece[] }>();
  /** Holders a fork in progress will hand to its child: kept while the parent may end meanwhile. */
  readonly #retained = new Map<string, number>();
  routedCalls = 0;

  constructor(private readonly kernel: LocalKernel, private readonly ask: Ask) {}

  /** How many pieces this process's tasks have. */
  get pieceCount(): number {
    let count = 0;
    for (const { pieces } of this.#tasks.values()) count += pieces.length;
    return count;
  }

  has(task: TaskId): boolean { return this.#tasks.has(task); }

  add(task: TaskId, node: NodeId, pieces: Piece[]): void {
    if (pieces.length > 0) this.#tasks.set(task, { node, pieces: pieces.sort((a, b) => a.start - b.start) });
  }

  /** Copies of the task's pieces, in address order (none for a task without remote memory). */
  pieces(task: TaskId): Piece[] { return this.#pieces(task).map((piece) => ({ ...piece })); }

  /** Keeps the holders of `pieces` while a fork hands them on (released by unretain). */
  retain(pieces: readonly Piece[]): void {
    for (const key of holderKeys(pieces)) this.#retained.set(key, (this.#retained.get(key) ?? 0) + 1);
  }

  /** Undoes retain; answers the holders no task of this process uses any more (to release). */
  unretain(pieces: readonly Piece[]): Piece[] {
    for (const key of holderKeys(pieces)) {
      const count = (this.#retained.get(key) ?? 1) - 1;
      if (count > 0) this.#retained.set(key, count);
      else this.#retained.delete(key);
    }
    return this.#orphans(pieces);
  }

  /** The task is gone: its pieces go; answers the holders no task of this process uses any more (to release). */
  forget(task: TaskId): Piece[] {
    const entry = this.#tasks.get(task);
    this.#tasks.delete(task);
    return this.#orphans(entry?.pieces ?? []);
  }

  /** One piece per holder of `pieces` that no task here maps and no fork in progress keeps. */
  #orphans(pieces: readonly Piece[]): Piece[] {
    return pieces.filter((piece, index) => {
      const key = holderKey(piece);
      return pieces.findIndex((other) => holderKey(other) === key) === index && !this.#inUse(key);
    });
  }

  /** Whether a task here (other than `except`) maps a piece of holder `key`, or a fork keeps it. */
  #inUse(key: string, except?: TaskId): boolean {
    if (this.#retained.has(key)) return true;
    for (const [task, { pieces }] of this.#tasks) {
      if (task !== except && pieces.some((piece) => holderKey(piece) === key)) return true;
    }
    return false;
  }

  /**
   * Runs `method` here when it is about memory homed elsewhere; undefined when it is not (the
   * caller runs it on the local kernel as usual). Codes: those of the local routine, with
   * KERN_PROTECTION_FAILURE for a raw view of a piece (with `why`), and KERN_NODE_DOWN when the home process is down.
   */
  route(node: number, method: string, args: readonly unknown[]): Promise<Reply> | undefined {
    const task = args[0] as TaskId;
    const entry = this.#tasks.get(task);
    if (entry === undefined || entry.node !== node) return undefined;
    const [, a, b, c, d] = args;
    let routed: Promise<Reply> | undefined;
    switch (method) {
      case 'vmRead': routed = this.#touches(task, a, b) ? this.#read(task, a as number, b as number) : undefined; break;
      case 'vmWrite': routed = b instanceof Uint8Array && this.#touches(task, a, b.byteLength) ? this.#write(task, a as number, b) : undefined; break;
      case 'vmCopy': routed = this.#touches(task, a, b) || this.#touches(task, c, b) ? this.#copy(task, a as number, b as number, c as number) : undefined; break;
      case 'vmView': routed = this.#touches(task, a, Math.max(1, b as number)) ? Promise.resolve(this.#refuseView(task, a as number)) : undefined; break;
      case 'vmRegion': routed = this.#region(task, a); break;
      case 'vmRegions': routed = this.#regions(task); break;
      case 'vmProtect': routed = this.#touches(task, a, b) ? this.#protect(task, a as number, b as number, c, d) : undefined; break;
      case 'vmInherit': routed = this.#touches(task, a, b) ? this.#inherit(task, a as number, b as number, c) : undefined; break;
      case 'vmDeallocate': routed = this.#touches(task, a, b) ? this.#deallocate(task, a as number, b as number) : undefined; break;
      default: routed = undefined;
    }
    if (routed !== undefined) this.routedCalls++;
    return routed;
  }

  #pieces(task: TaskId): Piece[] { return this.#tasks.get(task)?.pieces ?? []; }
  #node(task: TaskId): NodeId { return this.#tasks.get(task)!.node; }

  /** Whether [address, address + size) (a well-formed range) overlaps a piece. */
  #touches(task: TaskId, address: unknown, size: unknown): boolean {
    if (!isQuantity(address) || !isQuantity(size) || size === 0) return false;
    return this.#pieces(task).some((piece) => piece.start < address + size && address < piece.end);
  }

  /** [start, end) cut at piece bounds. */
  #segments(task: TaskId, start: number, end: number): Segment[] {
    const segments: Segment[] = [];
    let cursor = start;
    for (const piece of this.#pieces(task)) {
      if (piece.end <= cursor || piece.start >= end) continue;
      if (piece.start > cursor) segments.push({ start: cursor, end: piece.start });
      const to = Math.min(end, piece.end);
      segments.push({ start: Math.max(cursor, piece.start), end: to, piece });
      cursor = to;
    }
    if (cursor < end) segments.push({ start: cursor, end });
    return segments;
  }

  #page(address: number, up: boolean): number {
    const page = this.kernel.pageSize;
    return (up ? Math.ceil(address / page) : Math.floor(address / page)) * page;
  }

  /**
   * Checks the local segments against the task's map: mapped throughout, and `test` true of
   * each region met. KERN_INVALID_ADDRESS for a hole, else the first failing test's code.
   */
  async #checkLocal(task: TaskId, segments: readonly Segment[], test: (region: RegionInfo) => number): Promise<number> {
    const local = segments.filter((segment) => segment.piece === undefined);
    if (local.length === 0) return KERN_SUCCESS;
    const reply = await this.kernel.request(this.#node(task), 'vmRegions', task);
    if (reply.regions === undefined) return reply.kr;
    for (const segment of local) {
      let cursor = segment.start;
      for (const region of reply.regions) {
        if (region.address + region.size <= cursor || region.address >= segment.end) continue;
        if (region.address > cursor) return KERN_INVALID_ADDRESS;
        const kr = test(region);
        if (kr !== KERN_SUCCESS) return kr;
        cursor = region.address + region.size;
        if (cursor >= segment.end) break;
      }
      if (cursor < segment.end) return KERN_INVALID_ADDRESS;
    }
    return KERN_SUCCESS;
  }

  /** The remote pieces' own protection against `access`. */
  static #allow(segments: readonly Segment[], access: number): number {
    const denied = segments.some((segment) => segment.piece !== undefined && (segment.piece.protection & access) !== access);
    return denied ? KERN_PROTECTION_FAILURE : KERN_SUCCESS;
  }

  async #read(task: TaskId, address: number, size: number): Promise<Reply> {
    const segments = this.#segments(task, address, address + size);
    const allowed = RemoteMemory.#allow(segments, VM_PROT_READ);
    if (allowed !== KERN_SUCCESS) return { kr: allowed };
    const parts = await Promise.all(segments.map((segment) => segment.piece === undefined
      ? this.kernel.request(this.#node(task), 'vmRead', task, segment.start, segment.end - segment.start)
      : this.ask(segment.piece.home, {
        op: 'read', node: segment.piece.holderNode, holder: segment.piece.holder,
        address: segment.start, size: segment.end - segment.start,
      }) as Promise<{ kr: number; data?: Uint8Array }>));
    const failed = parts.find((part) => part.kr !== KERN_SUCCESS || part.data === undefined);
    if (failed !== undefined) return { kr: failed.kr === KERN_SUCCESS ? KERN_INVALID_ARGUMENT : failed.kr };
    const data = new Uint8Array(size);
    segments.forEach((segment, index) => data.set((parts[index] as Reply).data!, segment.start - address));
    return { kr: KERN_SUCCESS, data };
  }

  /** Checks every part first (local map, pieces' protection), then writes each where it lives. */
  async #write(task: TaskId, address: number, data: Uint8Array): Promise<Reply> {
    const segments = this.#segments(task, address, address + data.byteLength);
    const checked = await this.#writable(task, segments);
    if (checked !== KERN_SUCCESS) return { kr: checked };
    const replies = await Promise.all(segments.map((segment) => {
      const bytes = data.slice(segment.start - address, segment.end - address);
      return segment.piece === undefined
        ? this.kernel.request(this.#node(task), 'vmWrite', task, segment.start, bytes)
        : this.ask(segment.piece.home, { op: 'write', node: segment.piece.holderNode, holder: segment.piece.holder, address: segment.start, data: bytes });
    }));
    return { kr: replies.find((reply) => reply.kr !== KERN_SUCCESS)?.kr ?? KERN_SUCCESS };
  }

  async #writable(task: TaskId, segments: readonly Segment[]): Promise<number> {
    const allowed = RemoteMemory.#allow(segments, VM_PROT_WRITE);
    if (allowed !== KERN_SUCCESS) return allowed;
    return this.#checkLocal(task, segments, (region) =>
      (region.protection & VM_PROT_WRITE) === VM_PROT_WRITE ? KERN_SUCCESS : KERN_PROTECTION_FAILURE);
  }

  /** vm_copy as a read of the source then a write of the destination, each part where it lives. */
  async #copy(task: TaskId, source: number, size: number, dest: number): Promise<Reply> {
    if (!isQuantity(dest)) return { kr: KERN_INVALID_ADDRESS };
    const writable = await this.#writable(task, this.#segments(task, dest, dest + size));
    if (writable !== KERN_SUCCESS) return { kr: writable };
    const read = await this.#read(task, source, size);
    if (read.kr !== KERN_SUCCESS) return read;
    return this.#write(task, dest, read.data as Uint8Array);
  }

  #refuseView(task: TaskId, address: number): Reply {
    const piece = this.#pieces(task).find((candidate) => candidate.end > address)!;
    const at = Math.max(address, piece.start);
    return {
      kr: KERN_PROTECTION_FAILURE,
      why: `memory at 0x${at.toString(16)} is homed in process ${piece.home}; a raw view of another process's memory ` +
        'needs a coherent pager (XMM), which norma does not have yet',
    };
  }

  /** The home's region of each piece (object, offset, shared), one request per holder. */
  async #homeRegions(pieces: readonly Piece[]): Promise<Map<Piece, RegionInfo | undefined>> {
    const byHolder = new Map<string, Piece[]>();
    for (const piece of pieces) {
      const key = `${piece.home}:${piece.holder}`;
      byHolder.set(key, [...(byHolder.get(key) ?? []), piece]);
    }
    const found = new Map<Piece, RegionInfo | undefined>();
    await Promise.all([...byHolder.values()].map(async (group) => {
      const { home, holderNode, holder } = group[0]!;
      const reply = await this.ask(home, { op: 'regions', node: holderNode, holder }) as { kr: number; regions?: RegionInfo[] };
      for (const piece of group) {
        found.set(piece, reply.regions?.find((region) => region.address <= piece.start && piece.start < region.address + region.size));
      }
    }));
    return found;
  }

  /**
   * A piece as vm_region reports it: the child's own protection, maximum and inheritance; the
   * home region's `shared` and offset; the object named with its process (`p<process>/<object>`;
   * `p<process>/?` while that process does not answer).
   */
  static #info(piece: Piece, home: RegionInfo | undefined): RegionInfo {
    return {
      address: piece.start, size: piece.end - piece.start, protection: piece.protection, maxProtection: piece.maxProtection,
      inheritance: piece.inheritance, shared: home?.shared ?? true,
      offset: home === undefined ? 0 : home.offset + (piece.start - home.address),
      object: `p${piece.home}/${home?.object ?? '?'}`,
    };
  }

  async #region(task: TaskId, address: unknown): Promise<Reply> {
    const local = await this.kernel.request(this.#node(task), 'vmRegion', task, address as number);
    if (local.region === undefined) return local;
    const { address: start, size } = local.region;
    const from = Math.max(start, address as number);
    const piece = this.#pieces(task).find((candidate) => candidate.end > from && candidate.start < start + size);
    if (piece === undefined) return local;
    const homes = await this.#homeRegions([piece]);
    return { kr: KERN_SUCCESS, region: RemoteMemory.#info(piece, homes.get(piece)) };
  }

  async #regions(task: TaskId): Promise<Reply> {
    const local = await this.kernel.request(this.#node(task), 'vmRegions', task);
    if (local.regions === undefined) return local;
    const pieces = this.#pieces(task);
    const homes = await this.#homeRegions(pieces);
    const regions: RegionInfo[] = [];
    for (const region of local.regions) {
      const end = region.address + region.size;
      const inside = pieces.filter((piece) => piece.start < end && region.address < piece.end);
      if (inside.length === 0) regions.push(region);
      else for (const piece of inside) regions.push(RemoteMemory.#info(piece, homes.get(piece)));
    }
    return { kr: KERN_SUCCESS, regions };
  }

  /** The pieces cut at `start` and `end` (page bounds), so a change applies to whole pieces. */
  #clip(task: TaskId, start: number, end: number): void {
    const pieces = this.#pieces(task);
    for (const at of [start, end]) {
      const index = pieces.findIndex((piece) => piece.start < at && at < piece.end);
      if (index < 0) continue;
      const piece = pieces[index]!;
      pieces.splice(index + 1, 0, { ...piece, start: at });
      piece.end = at;
    }
  }

  /**
   * vm_protect on a range with pieces: the child's own protection, so handled here (the holder
   * in the home process keeps full access and the placeholder stays VM_PROT_NONE). Local parts
   * go to the kernel. Everything is checked before anything changes.
   */
  async #protect(task: TaskId, address: number, size: number, setMaximum: unknown, protection: unknown): Promise<Reply> {
    if (typeof setMaximum !== 'boolean' || !Number.isInteger(protection) || ((protection as number) & ~VM_PROT_ALL) !== 0) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    const value = protection as number;
    const start = this.#page(address, false);
    const end = this.#page(address + size, true);
    const segments = this.#segments(task, start, end);
    const exceeds = (max: number) => (value & max) !== value ? KERN_PROTECTION_FAILURE : KERN_SUCCESS;
    const checked = await this.#checkLocal(task, segments, (region) => exceeds(region.maxProtection));
    if (checked !== KERN_SUCCESS) return { kr: checked };
    if (segments.some((segment) => segment.piece !== undefined && exceeds(segment.piece.maxProtection) !== KERN_SUCCESS)) {
      return { kr: KERN_PROTECTION_FAILURE };
    }
    for (const segment of segments) {
      if (segment.piece !== undefined) continue;
      const reply = await this.kernel.request(this.#node(task), 'vmProtect', task, segment.start, segment.end - segment.start, setMaximum, value);
      if (reply.kr !== KERN_SUCCESS) return reply;
    }
    this.#clip(task, start, end);
    for (const piece of this.#pieces(task)) {
      if (piece.end <= start || piece.start >= end) continue;
      if (setMaximum) {
        piece.maxProtection = value;
        piece.protection &= value;
      } else {
        piece.protection = value;
      }
    }
    return { kr: KERN_SUCCESS };
  }

  /** vm_inherit: the kernel checks and sets the whole range (placeholders too), then the pieces follow. */
  async #inherit(task: TaskId, address: number, size: number, inheritance: unknown): Promise<Reply> {
    const reply = await this.kernel.request(this.#node(task), 'vmInherit', task, address, size, inheritance as number);
    if (reply.kr !== KERN_SUCCESS) return reply;
    const start = this.#page(address, false);
    const end = this.#page(address + size, true);
    this.#clip(task, start, end);
    for (const piece of this.#pieces(task)) if (piece.start >= start && piece.end <= end) piece.inheritance = inheritance as number;
    return reply;
  }

  /**
   * vm_deallocate: the kernel unmaps the whole range (placeholders too); the pieces in it go and
   * the home unmaps them from the holder (unless another task here still maps that holder),
   * which is released when no task here uses it any more.
   */
  async #deallocate(task: TaskId, address: number, size: number): Promise<Reply> {
    const reply = await this.kernel.request(this.#node(task), 'vmDeallocate', task, address, size);
    if (reply.kr !== KERN_SUCCESS) return reply;
    const start = this.#page(address, false);
    const end = this.#page(address + size, true);
    this.#clip(task, start, end);
    const entry = this.#tasks.get(task)!;
    const gone = entry.pieces.filter((piece) => piece.start >= start && piece.end <= end);
    entry.pieces = entry.pieces.filter((piece) => !gone.includes(piece));
    await Promise.all(gone.filter((piece) => !this.#inUse(holderKey(piece), task)).map((piece) => this.ask(piece.home, {
      op: 'unmap', node: piece.holderNode, holder: piece.holder, address: piece.start, size: piece.end - piece.start,
    })));
    if (entry.pieces.length === 0) this.#tasks.delete(task);
    const released = this.#orphans(gone);
    await Promise.all(released.map((piece) => this.ask(piece.home, { op: 'release', node: piece.holderNode, holder: piece.holder })));
    return reply;
  }
}

/** A holder as the pieces naming it share it: its home process and task there. */
function holderKey(piece: Piece): string { return `${piece.home}:${piece.holder}`; }

function holderKeys(pieces: readonly Piece[]): Set<string> { return new Set(pieces.map(holderKey)); }

function isQuantity(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
