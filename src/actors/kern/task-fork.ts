/**
 * Task forking (task_create and the norma_task_* calls): the child's address space drawn from
 * its parent's map by inheritance (MACH.md §4). On one node the child's map is built straight
 * from the parent's (xnu's vm_map_fork); for another node the parent's node captures a task
 * image (TaskImage in protocol.ts, encoded and decoded here) that the child's node adopts.
 */
import {
  KERN_FAILURE, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from '../../shared/constants.js';
import { type ForkMode, type ForkReply, type ImageObject, type InheritedPorts, type NodeApi, type TaskImage, type TaskLedgers } from '../../shared/protocol.js';
import type { MemoryObjectName, MemoryObjectRef, NodeId, SecurityToken } from '../../shared/types.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import { type MemoryObject, REF_TABLE_SLOTS } from '../vm/memory-object.js';
import type { ObjectCache } from '../vm/object-cache.js';
import type { VmMapEntry } from '../vm/vm-map.js';
import { Ledger } from './ledger.js';
import type { TaskActor } from './task.js';
import { releaseInherited } from '../ipc/special-ports.js';

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

/** What forking needs of its node kernel. */
export interface ForkNode {
  readonly cache: ObjectCache;
  readonly ipc: NodeIpc;
  /** A new task on this node, or undefined when the port table has no slot for its kernel port. */
  newTask(token: SecurityToken, ledgers: TaskLedgers, ports: InheritedPorts | null): TaskActor | undefined;
  callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }>;
}

/** The child's entries and the objects they need, drawn from the parent's map (see fork). */
interface Drawn {
  readonly entries: VmMapEntry[];
  /** The parent's objects the child shares, once each: one reference each is taken for it. */
  readonly shared: Map<number, MemoryObject>;
  /** The private copies made for COPY regions, each holding its one reference. */
  readonly copies: MemoryObject[];
}

const NOTHING_DRAWN: Drawn = { entries: [], shared: new Map(), copies: [] };

export class TaskFork {
  readonly #node: ForkNode;

  constructor(node: ForkNode) { this.#node = node; }

  /**
   * Draws the child's address space: by each region's inheritance for 'create', shared whatever
   * the inheritance for 'clone' and 'teleport'. The child's entries keep the parent's
   * inheritance values. All copies are made before any reference is taken, so a shortage part
   * way through is undone completely; no reference is taken here (the caller takes `shared`'s).
   */
  #draw(parent: TaskActor, mode: ForkMode, ledgers: TaskLedgers): { kr: number; drawn?: Drawn } {
    const paged = new Ledger(ledgers[1]);
    const copies: MemoryObject[] = [];
    const entries: VmMapEntry[] = [];
    const shared = new Map<number, MemoryObject>();
    for (const entry of parent.map.entries()) {
      const inheritance = mode === 'create' ? entry.inheritance : VM_INHERIT_SHARE;
      if (inheritance === VM_INHERIT_NONE) continue;
      const { start, end, offset, protection, maxProtection } = entry;
      if (inheritance === VM_INHERIT_COPY) {
        const copy = this.#copyEntry(entry, paged);
        if (copy.object === undefined) {
          this.#node.cache.release(copies);
          return { kr: copy.kr };
        }
        copies.push(copy.object);
        entries.push({ start, end, offset: 0, protection, maxProtection, inheritance: entry.inheritance, object: copy.object });
      } else {
        shared.set(entry.object.key, entry.object);
        entries.push({ start, end, offset, protection, maxProtection, inheritance: entry.inheritance, object: entry.object });
      }
    }
    return { kr: KERN_SUCCESS, drawn: { entries, shared, copies } };
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
   * The child, on the parent's node, its map built from the parent's in one synchronous step
   * (no image): the copies and shared references it ends with are those an image would carry.
   * On failure (no slot for the child's kernel port) nothing is left behind.
   */
  here(parent: TaskActor, mode: ForkMode, inheritMemory: boolean, ledgers: TaskLedgers): ForkReply {
    const drawn = inheritMemory ? this.#draw(parent, mode, ledgers) : { kr: KERN_SUCCESS, drawn: NOTHING_DRAWN };
    if (drawn.drawn === undefined) return { kr: drawn.kr };
    const { entries, shared, copies } = drawn.drawn;
    const ports = parent.ipc.inheritable();
    const child = this.#node.newTask(parent.token, ledgers, ports);
    if (child === undefined) {
      releaseInherited(this.#node.ipc, ports);
      this.#node.cache.release(copies);
      return { kr: KERN_RESOURCE_SHORTAGE, released: [] };
    }
    for (const object of shared.values()) this.#node.cache.references.reference(object);
    for (const entry of entries) child.map.enter(entry);
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
    const image = new TaskImageWriter((object) => object.generation !== 0 && cache.isResident(object, childNode));
    if (inheritMemory) {
      const drawn = this.#draw(parent, mode, ledgers);
      if (drawn.drawn === undefined) return { kr: drawn.kr };
      for (const entry of drawn.drawn.entries) image.entry(entry, entry.object);
      for (const object of drawn.drawn.shared.values()) cache.references.reference(object);
    }
    return { kr: KERN_SUCCESS, image: image.finish(parent.token, ledgers, parent.ipc.inheritable()) };
  }

  /**
   * Builds the child from an image captured on the parent's node. An image leaves out buffers
   * this node held when it was made; one let go of since is fetched from its home pager (the
   * image's reference keeps the object alive there).
   * Returns the fork reply, passing on the parent's `released`; KERN_NODE_DOWN when a home node
   * is down; KERN_RESOURCE_SHORTAGE when the port table has no slot for the child's kernel port.
   * On failure the image's references are dropped.
   */
  adopt(image: TaskImage, released: readonly MemoryObjectName[]): ForkReply | Promise<ForkReply> {
    const named = imageObjects(image);
    const objects = named.map((object) => this.#node.cache.object(object));
    if (objects.includes(undefined)) return this.#adoptFetching(image, released, named, objects);
    return this.#adopted(image, released, objects as MemoryObject[]);
  }

  /** Fetches the missing buffers from their homes, all homes at once, then builds the child. */
  async #adoptFetching(image: TaskImage, released: readonly MemoryObjectName[], named: readonly ImageObject[],
    objects: (MemoryObject | undefined)[]): Promise<ForkReply> {
    const byHome = new Map<NodeId, number[]>();
    objects.forEach((object, index) => {
      if (object !== undefined) return;
      const home = named[index]!.home;
      let indices = byHome.get(home);
      if (indices === undefined) byHome.set(home, indices = []);
      indices.push(index);
    });
    const homes = [...byHome];
    const replies = await Promise.all(homes.map(([home, indices]) =>
      this.#node.callNode(home, 'pagerBuffers', [indices.map((index) => named[index]!.slot)]) as
        Promise<{ kr: number; buffers?: SharedArrayBuffer[] }>));
    const failed = replies.find((reply) => reply.buffers === undefined);
    if (failed !== undefined) {
      this.release(image);
      return { kr: failed.kr === KERN_SUCCESS ? KERN_FAILURE : failed.kr, released };
    }
    const buffers = objects.map((object) => object?.sab);
    homes.forEach(([, indices], at) => indices.forEach((index, order) => { buffers[index] = replies[at]!.buffers![order]; }));
    // The cache may have let go of an object, or taken one in, while the buffers came: ask again.
    return this.#adopted(image, released, named.map((object, index) => this.#node.cache.object({ ...object, sab: buffers[index]! })!));
  }

  #adopted(image: TaskImage, released: readonly MemoryObjectName[], objects: readonly MemoryObject[]): ForkReply {
    const child = this.#node.newTask(image.token, image.ledgers, image.ports);
    if (child === undefined) {
      this.release(image);
      return { kr: KERN_RESOURCE_SHORTAGE, released };
    }
    for (const entry of imageEntries(image, objects)) child.map.enter(entry);
    return { kr: KERN_SUCCESS, child: child.id, childPort: child.ipc.taskPort, released };
  }

  /**
   * Drops what an image holds (its child will never be built): its inherited rights and its
   * object references, the objects freed reaching their pagers through the cache.
   */
  release(image: TaskImage, reply?: MemoryObjectName[]): void {
    releaseInherited(this.#node.ipc, image.ports);
    this.#node.cache.release(imageObjects(image), reply);
  }
}
