/**
 * Memory objects (Mach `vm_object` backed by its default pager): a SharedArrayBuffer owned by
 * the pager of the node that allocated it, plus a reference count that lives in that pager's
 * shared reference table, so any node maps or unmaps it with a single Atomics operation.
 */
import { HOLDING_BYTES, HOLDING_SLOTS, REF_COUNT, REF_GENERATION, REF_MAPS, REF_RESIDENT, REF_TABLE_SLOTS, REF_WORDS, RESIDENT_NODES } from '../../shared/protocol.js';
import type { NodeId, MemoryObjectName, MemoryObjectRef } from '../../shared/types.js';

export class MemoryObject {
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

  toRef(): MemoryObjectRef { return { home: this.home, slot: this.slot, generation: this.generation, sab: this.sab }; }

  toName(): MemoryObjectName { return { home: this.home, slot: this.slot }; }
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
