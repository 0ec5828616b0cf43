/**
 * Task forking (task_create and the norma_task_* calls): the child's address space drawn from
 * its parent's map by inheritance (MACH.md §4). On one node the child's map is built straight
 * from the parent's (xnu's vm_map_fork); for another node the parent's node captures a task
 * image (TaskImage in protocol.ts, encoded and decoded here) that the child's node adopts.
 */
import {
  KERN_FAILURE, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from '../../shared/constants.js';
import { type ForkMode, type ForkReply, type InheritedPorts, type NodeApi, type TaskImage, type TaskLedgers } from '../../shared/protocol.js';
import type { MemoryObjectName, MemoryObjectRef, NodeId, SecurityToken } from '../../shared/types.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import { type MemoryObject, REF_TABLE_SLOTS } from '../vm/memory-object.js';
import { KeyedTable } from '../vm/keyed-table.js';
import type { ObjectCache } from '../vm/object-cache.js';
import { VmMapEntry } from '../vm/vm-map.js';
import { Ledger } from './ledger.js';
import type { TaskActor } from './task.js';
import { releaseInherited } from '../ipc/special-ports.js';

export const IMAGE_ENTRY_WORDS = 7;
export const IMAGE_OBJECT_WORDS = 3;

/** One vm map entry's attributes as a task image carries them (its object is an index there). */
export interface VmEntryImage {
  readonly start: number;
  readonly end: number;
  readonly offset: number;
  readonly protection: number;
  readonly maxProtection: number;
  readonly inheritance: number;
}

/**
 * Builds a task image straight into its flat arrays, sized for `capacity` entries up front (a
 * fork knows its parent's entry count); objects are numbered in the order they are first added.
 */
export class TaskImageWriter {
  #entries: Float64Array;
  #entryWords = 0;
  #objects: Int32Array;
  readonly #buffers: (SharedArrayBuffer | null)[] = [];
  /** The image's objects, in index order. */
  readonly refs: MemoryObjectRef[] = [];
  readonly #indexByKey = new KeyedTable<number>();
  /** Whether the receiving node holds an object's buffer already (then the image only names it). */
  readonly #resident: (object: MemoryObjectRef) => boolean;

  constructor(resident: (object: MemoryObjectRef) => boolean = () => false, capacity = 8) {
    this.#resident = resident;
    this.#entries = new Float64Array(Math.max(1, capacity) * IMAGE_ENTRY_WORDS);
    this.#objects = new Int32Array(Math.max(1, capacity) * IMAGE_OBJECT_WORDS);
  }

  /** Adds an object (once per key) and returns its index in the image. */
  object(ref: MemoryObjectRef): number {
    const key = ref.home * REF_TABLE_SLOTS + ref.slot;
    let index = this.#indexByKey.get(key);
    if (index !== undefined) return index;
    index = this.refs.length;
    this.#indexByKey.set(key, index);
    let at = index * IMAGE_OBJECT_WORDS;
    if (at === this.#objects.length) this.#objects = grown(this.#objects);
    const objects = this.#objects;
    objects[at++] = ref.home;
    objects[at++] = ref.slot;
    objects[at] = ref.generation;
    this.refs.push(ref);
    this.#buffers.push(this.#resident(ref) ? null : ref.sab);
    return index;
  }

  /** Adds an entry mapping `object` at `offset` (the entry's own unless given: a copy's is 0). */
  entry(entry: VmEntryImage, object: MemoryObjectRef, offset = entry.offset): void {
    const index = this.object(object);
    let at = this.#entryWords;
    if (at === this.#entries.length) this.#entries = grown(this.#entries);
    const words = this.#entries;
    words[at++] = entry.start;
    words[at++] = entry.end;
    words[at++] = offset;
    words[at++] = entry.protection;
    words[at++] = entry.maxProtection;
    words[at++] = entry.inheritance;
    words[at++] = index;
    this.#entryWords = at;
  }

  finish(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts): TaskImage {
    const objectWords = this.refs.length * IMAGE_OBJECT_WORDS;
    return {
      ports,
      // Exactly sized: a typed array crosses a thread with its whole buffer.
      entries: this.#entryWords === this.#entries.length ? this.#entries : this.#entries.slice(0, this.#entryWords),
      objects: objectWords === this.#objects.length ? this.#objects : this.#objects.slice(0, objectWords),
      buffers: this.#buffers,
      token,
      ledgers,
    };
  }
}

function grown<T extends Float64Array | Int32Array>(words: T): T {
  const larger = new (words.constructor as new (length: number) => T)(words.length * 2);
  larger.set(words);
  return larger;
}

/** The names of an image's objects (what releasing its references needs), in index order. */
function imageNames(image: TaskImage): MemoryObjectName[] {
  const words = image.objects;
  const names = new Array<MemoryObjectName>(words.length / IMAGE_OBJECT_WORDS);
  for (let at = 0, index = 0; at < words.length; at += IMAGE_OBJECT_WORDS, index++) {
    names[index] = { home: words[at]! as NodeId, slot: words[at + 1]! };
  }
  return names;
}

/** The entries of an image, in address order, each with its object from `objects`. */
function imageEntries(image: TaskImage, objects: readonly MemoryObject[]): VmMapEntry[] {
  const words = image.entries;
  const entries = new Array<VmMapEntry>(words.length / IMAGE_ENTRY_WORDS);
  for (let at = 0, index = 0; at < words.length; at += IMAGE_ENTRY_WORDS, index++) {
    entries[index] = new VmMapEntry(words[at]!, words[at + 1]!, objects[words[at + 6]!]!, words[at + 2]!,
      words[at + 3]!, words[at + 4]!, words[at + 5]!);
  }
  return entries;
}

/** What forking needs of its node kernel. */
export interface ForkNode {
  readonly cache: ObjectCache;
  readonly ipc: NodeIpc;
  /** A new task on this node, or undefined when the port table has no slot for its kernel port. */
  newTask(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts | null): TaskActor | undefined;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
}

/** Where a fork's walk puts each inherited entry: `object` at `offset` with `from`'s other attributes. */
type Put = (from: VmMapEntry, object: MemoryObject, offset: number) => void;

export class TaskFork {
  readonly #node: ForkNode;
  readonly #reference = (object: MemoryObject): void => this.#node.cache.references.reference(object);

  constructor(node: ForkNode) { this.#node = node; }

  /**
   * The walk of vm_map_fork: each of the parent's entries by its inheritance for 'create', shared
   * whatever the inheritance for 'clone' and 'teleport' (the child's entries keep the parent's
   * inheritance values); SHARE entries put with the parent's object, COPY entries with a private
   * copy, NONE entries skipped. All copies are made before anything else, so a shortage part way
   * through is undone completely. No reference is taken here: the caller takes one per distinct
   * shared object (see `sharing`); the copies (returned) hold theirs.
   */
  #draw(parent: TaskActor, mode: ForkMode, ledgers: TaskLedgers, put: Put): { kr: number; copies?: MemoryObject[] } {
    const source = parent.map.entries();
    const copies: MemoryObject[] = [];
    let paged: Ledger | undefined;
    for (let index = 0; index < source.length; index++) {
      const entry = source[index]!;
      const inheritance = mode === 'create' ? entry.inheritance : VM_INHERIT_SHARE;
      if (inheritance === VM_INHERIT_NONE) continue;
      if (inheritance !== VM_INHERIT_COPY) {
        put(entry, entry.object, entry.offset);
        continue;
      }
      const copy = this.#copyEntry(entry, paged ??= new Ledger(ledgers[1]));
      if (copy.object === undefined) {
        this.#node.cache.release(copies);
        return { kr: copy.kr };
      }
      copies.push(copy.object);
      put(entry, copy.object, 0);
    }
    return { kr: KERN_SUCCESS, copies };
  }

  /** Takes the reference a child holds on an object it maps, unless it is one of `copies` (which hold theirs). */
  #sharing(copies: readonly MemoryObject[]): (object: MemoryObject) => void {
    if (copies.length === 0) return this.#reference;
    const own = new Set(copies);
    return (object) => { if (!own.has(object)) this.#reference(object); };
  }

  /** A private copy of an entry's bytes, as they are now, in a new object charged to `ledger`. */
  #copyEntry(entry: VmMapEntry, ledger: Ledger): { kr: number; object?: MemoryObject } {
    const length = entry.end - entry.start;
    const made = this.#node.cache.pager.create(length, ledger);
    if (made.object === undefined) return made;
    new Uint8Array(made.object.sab).set(new Uint8Array(entry.object.sab, entry.offset, length));
    return made;
  }

  /**
   * The child, on the parent's node, its map filled straight from the parent's in one
   * synchronous step (no image): it ends with the copies and shared references an image would
   * carry. On failure (no slot for the child's kernel port) nothing is left behind.
   */
  here(parent: TaskActor, mode: ForkMode, inheritMemory: boolean, ledgers: TaskLedgers): ForkReply {
    const entries = new Array<VmMapEntry>(inheritMemory ? parent.map.regionCount : 0);
    let count = 0;
    let copies: MemoryObject[] = [];
    if (inheritMemory) {
      const drawn = this.#draw(parent, mode, ledgers, (from, object, offset) => {
        entries[count++] = new VmMapEntry(from.start, from.end, object, offset, from.protection, from.maxProtection,
          from.inheritance);
      });
      if (drawn.copies === undefined) return { kr: drawn.kr };
      copies = drawn.copies;
      entries.length = count;
    }
    const ports = parent.ipc.inheritable();
    const child = this.#node.newTask(parent.token, ledgers, ports);
    if (child === undefined) {
      releaseInherited(this.#node.ipc, ports);
      this.#node.cache.release(copies);
      return { kr: KERN_RESOURCE_SHORTAGE, released: [] };
    }
    child.map.fill(entries, this.#sharing(copies));
    return { kr: KERN_SUCCESS, child: child.id, childPort: child.ipc.taskPort, released: [] };
  }

  /**
   * The image of the child for `childNode`, holding one reference per distinct shared object
   * and the private copies made for COPY regions. Buffers the child's node holds already are
   * named, not carried (a copy is new everywhere).
   */
  capture(parent: TaskActor, mode: ForkMode, inheritMemory: boolean, ledgers: TaskLedgers, childNode: NodeId):
    { kr: number; image?: TaskImage } {
    const { cache } = this.#node;
    const image = new TaskImageWriter((object) => object.generation !== 0 && cache.isResident(object, childNode),
      inheritMemory ? parent.map.regionCount : 0);
    if (inheritMemory) {
      const drawn = this.#draw(parent, mode, ledgers, (from, object, offset) => image.entry(from, object, offset));
      if (drawn.copies === undefined) return { kr: drawn.kr };
      const take = this.#sharing(drawn.copies);
      for (const object of image.refs as MemoryObject[]) take(object);
    }
    return { kr: KERN_SUCCESS, image: image.finish(parent.token, ledgers, parent.ipc.inheritable()) };
  }

  /**
   * Builds the child from an image captured on the parent's node, each object resolved to this
   * node's one MemoryObject for it. An image leaves out buffers this node held when it was made;
   * one let go of since is fetched from its home pager (the image's reference keeps the object
   * alive there).
   * Returns the fork reply, passing on the parent's `released`; KERN_NODE_DOWN when a home node
   * is down; KERN_RESOURCE_SHORTAGE when the port table has no slot for the child's kernel port.
   * On failure the image's references are dropped.
   */
  adopt(image: TaskImage, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply> {
    const objects = this.#resolve(image, image.buffers);
    if (objects === undefined) return this.#adoptFetching(image, released);
    return this.#adopted(image, released, objects);
  }

  /** This node's object for each of the image's, or undefined when a buffer is neither carried nor held here. */
  #resolve(image: TaskImage, buffers: readonly (SharedArrayBuffer | null)[]): MemoryObject[] | undefined {
    const { cache } = this.#node;
    const words = image.objects;
    const objects = new Array<MemoryObject>(buffers.length);
    for (let index = 0, at = 0; index < buffers.length; index++, at += IMAGE_OBJECT_WORDS) {
      const object = cache.objectAt(words[at]! as NodeId, words[at + 1]!, words[at + 2]!, buffers[index] ?? null);
      if (object === undefined) return undefined;
      objects[index] = object;
    }
    return objects;
  }

  /** Fetches the missing buffers from their homes, all homes at once, then builds the child. */
  async #adoptFetching(image: TaskImage, released: readonly MemoryObjectName[]): Promise<ForkReply> {
    const { cache } = this.#node;
    const words = image.objects;
    const buffers = image.buffers.slice();
    // Grouped by home in one pass: an array indexed by node (there are few).
    const byHome: number[][] = [];
    for (let index = 0, at = 0; index < buffers.length; index++, at += IMAGE_OBJECT_WORDS) {
      const home = words[at]!;
      const object = cache.objectAt(home as NodeId, words[at + 1]!, words[at + 2]!, buffers[index] ?? null);
      if (object !== undefined) buffers[index] = object.sab;
      else (byHome[home] ??= []).push(index);
    }
    const homes = byHome.flatMap((indices, home) => indices === undefined ? [] : [home as NodeId]);
    const replies = await Promise.all(homes.map((home) =>
      this.#node.callNode(home, 'pagerBuffers', [byHome[home]!.map((index) => words[index * IMAGE_OBJECT_WORDS + 1]!)]) as
        Promise<{ kr: number; buffers?: SharedArrayBuffer[] }>));
    const failed = replies.find((reply) => reply.buffers === undefined);
    if (failed !== undefined) {
      this.release(image);
      return { kr: failed.kr === KERN_SUCCESS ? KERN_FAILURE : failed.kr, released };
    }
    homes.forEach((home, at) => byHome[home]!.forEach((index, order) => { buffers[index] = replies[at]!.buffers![order]!; }));
    // The cache may have let go of an object, or taken one in, while the buffers came: ask again.
    return this.#adopted(image, released, this.#resolve(image, buffers)!);
  }

  #adopted(image: TaskImage, released: readonly MemoryObjectName[], objects: readonly MemoryObject[]): ForkReply {
    const child = this.#node.newTask(image.token, image.ledgers, image.ports);
    if (child === undefined) {
      this.release(image);
      return { kr: KERN_RESOURCE_SHORTAGE, released };
    }
    // The image's references become the map's.
    child.map.fill(imageEntries(image, objects));
    return { kr: KERN_SUCCESS, child: child.id, childPort: child.ipc.taskPort, released };
  }

  /**
   * Drops what an image holds (its child will never be built): its inherited rights and its
   * object references, the objects freed reaching their pagers through the cache.
   */
  release(image: TaskImage, reply?: MemoryObjectName[]): void {
    releaseInherited(this.#node.ipc, image.ports);
    this.#node.cache.release(imageNames(image), reply);
  }
}
