/**
 * Memory objects (Mach `vm_object` backed by its default pager): a SharedArrayBuffer owned by
 * the pager of the node that allocated it, plus a reference count that lives in that pager's
 * shared reference table, so any node maps or unmaps it with a single Atomics operation.
 */
import type { NodeId, MemoryObjectName, MemoryObjectRef } from '../../shared/types.js';

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
/** Objects one node's maps may hold at once and still be released if it dies (MapHoldings below). */
export const HOLDING_SLOTS = 1 << 19;
export const HOLDING_BYTES = (1 + 2 * HOLDING_SLOTS) * Int32Array.BYTES_PER_ELEMENT;

/**
 * One per object per node (the node's ObjectCache hands out the canonical one), so everything
 * on a node that maps or names the object shares one instance. It is its own wire form: its
 * fields are the MemoryObjectRef a message or image carries.
 */
export class MemoryObject implements MemoryObjectRef {
  readonly home: NodeId;
  readonly slot: number;
  readonly generation: number;
  readonly sab: SharedArrayBuffer;

  constructor(ref: MemoryObjectRef) {
    this.home = ref.home;
    this.slot = ref.slot;
    this.generation = ref.generation;
    this.sab = ref.sab;
  }

  get size(): number { return this.sab.byteLength; }

  /** Unique across the kernel; equal keys mean the same memory. */
  get key(): number { return this.home * REF_TABLE_SLOTS + this.slot; }

  get label(): string { return `${this.home}:${this.slot}`; }

}

/**
 * Every pager's reference table, as seen from one thread (host or node). A count is the number
 * of vm maps mapping the object plus the task images in flight that will map it.
 */
export class ObjectReferences {
  readonly #tables: Int32Array[];

  constructor(tables: readonly SharedArrayBuffer[]) {
    this.#tables = tables.map((sab) => new Int32Array(sab));
  }

  #table(home: NodeId): Int32Array {
    const table = this.#tables[home];
    if (table === undefined) throw new Error(`no reference table for node ${home}`);
    return table;
  }

  /** Takes one reference; the caller must already hold one (or be the creating pager). */
  reference(object: MemoryObjectName): void {
    Atomics.add(this.#table(object.home), object.slot * REF_WORDS + REF_COUNT, 1);
  }

  /** Drops one reference; true when it was the last, and the home pager must free the object. */
  release(object: MemoryObjectName): boolean {
    const before = Atomics.sub(this.#table(object.home), object.slot * REF_WORDS + REF_COUNT, 1);
    if (before <= 0) throw new Error(`memory object ${object.home}:${object.slot} over-released`);
    return before === 1;
  }

  count(object: MemoryObjectName): number {
    return Atomics.load(this.#table(object.home), object.slot * REF_WORDS + REF_COUNT);
  }

  /**
   * Sets up a freshly allocated slot (home pager only): its count, no node holding its buffer
   * yet, and the next generation, which it returns.
   */
  initialize(object: MemoryObjectName, count: number): number {
    const table = this.#table(object.home);
    const base = object.slot * REF_WORDS;
    Atomics.store(table, base + REF_RESIDENT, 0);
    Atomics.store(table, base + REF_MAPS, 0);
    Atomics.store(table, base + REF_COUNT, count);
    return Atomics.add(table, base + REF_GENERATION, 1) + 1;
  }

  /**
   * Counts the vm maps mapping the object now (+1 when a map starts mapping it, -1 when its last
   * entry of it goes), apart from the references images and messages in flight hold; returns the
   * new count. vm_region's `shared` is this count above 1.
   */
  countMaps(object: MemoryObjectName, delta: 1 | -1): number {
    return Atomics.add(this.#table(object.home), object.slot * REF_WORDS + REF_MAPS, delta) + delta;
  }

  /** How many vm maps map the object now (see countMaps). */
  maps(object: MemoryObjectName): number {
    return Atomics.load(this.#table(object.home), object.slot * REF_WORDS + REF_MAPS);
  }

  /**
   * Drops the `maps` references that the maps of dead node `node` held, and those maps from the
   * map count, and the `messages` references its messages' regions held; true when they were
   * the last, and the home pager must free the object.
   */
  forgetNode(object: MemoryObjectName, node: number, maps: number, messages = 0): boolean {
    const table = this.#table(object.home);
    const base = object.slot * REF_WORDS;
    this.setResident(object, node, false);
    if (maps > 0) Atomics.sub(table, base + REF_MAPS, maps);
    const references = maps + messages;
    const before = Atomics.sub(table, base + REF_COUNT, references);
    if (before < references) throw new Error(`memory object ${object.home}:${object.slot} over-released`);
    return before === references;
  }

  /** True when `node` has said it holds the object's buffer (a hint: it may have let go since). */
  isResident(object: MemoryObjectName, node: number): boolean {
    return node < RESIDENT_NODES &&
      (Atomics.load(this.#table(object.home), object.slot * REF_WORDS + REF_RESIDENT) & (1 << node)) !== 0;
  }

  /** Records whether `node` holds the object's buffer. */
  setResident(object: MemoryObjectName, node: number, resident: boolean): void {
    if (node >= RESIDENT_NODES) return;
    const index = object.slot * REF_WORDS + REF_RESIDENT;
    if (resident) Atomics.or(this.#table(object.home), index, 1 << node);
    else Atomics.and(this.#table(object.home), index, ~(1 << node));
  }
}

/**
 * What one node's vm maps hold, kept in shared memory so the survivors can give it back when the
 * node dies (its heap, and the count of maps in it, die with it): an entry per object mapped
 * there, with how many of its maps map it, each of which holds one reference. Written by its
 * node alone (a map starts or stops mapping an object); read by the others once it is dead.
 *
 *   | entries ever used | key + 1 | maps | key + 1 | maps | ...   (HOLDING_SLOTS entries; key 0: free)
 *
 * A node mapping more than HOLDING_SLOTS objects at once records the rest nowhere: if it dies,
 * those stay referenced (counted in `overflow`).
 *
 * The same form records the references out-of-line regions of messages on a node hold (a
 * message's region counts where the message is: made there, queued or waiting there; not while
 * it crosses to another node, where it is recorded on arrival, so a node dying with messages on
 * their way to it leaks their references rather than releasing any twice).
 */
export class MapHoldings {
  readonly #words: Int32Array;
  readonly #free: number[] = [];
  overflow = 0;

  constructor(sab: SharedArrayBuffer) {
    this.#words = new Int32Array(sab);
  }

  static create(): SharedArrayBuffer {
    return new SharedArrayBuffer(HOLDING_BYTES);
  }

  /** Records an object newly mapped here by one map; its entry, or undefined when full. */
  add(key: number): number | undefined {
    let entry = this.#free.pop();
    if (entry === undefined) {
      entry = this.#words[0]!;
      if (entry >= HOLDING_SLOTS) {
        this.overflow++;
        return undefined;
      }
      Atomics.store(this.#words, 0, entry + 1);
    }
    Atomics.store(this.#words, 2 + entry * 2, 1);
    Atomics.store(this.#words, 1 + entry * 2, key + 1);
    return entry;
  }

  set(entry: number, maps: number): void { Atomics.store(this.#words, 2 + entry * 2, maps); }

  remove(entry: number): void {
    Atomics.store(this.#words, 1 + entry * 2, 0);
    this.#free.push(entry);
  }

  /** Every object a (dead) node's maps held: its key and how many maps held it. */
  static entries(sab: SharedArrayBuffer): Array<{ readonly key: number; readonly maps: number }> {
    const words = new Int32Array(sab);
    const entries: Array<{ key: number; maps: number }> = [];
    const used = Math.min(HOLDING_SLOTS, Atomics.load(words, 0));
    for (let entry = 0; entry < used; entry++) {
      const key = Atomics.load(words, 1 + entry * 2) - 1;
      const maps = Atomics.load(words, 2 + entry * 2);
      if (key >= 0 && maps > 0) entries.push({ key, maps });
    }
    return entries;
  }
}
