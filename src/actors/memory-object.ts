/**
 * Memory objects (Mach `vm_object` backed by its default pager): a SharedArrayBuffer owned by
 * the pager of the node that allocated it, plus a reference count that lives in that pager's
 * shared reference table, so any node maps or unmaps it with a single Atomics operation.
 */
import {
  REF_COUNT, REF_GENERATION, REF_RESIDENT, REF_TABLE_SLOTS, REF_WORDS, RESIDENT_NODES,
  type MemoryObjectName, type MemoryObjectRef,
} from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';

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
    Atomics.store(table, base + REF_COUNT, count);
    return Atomics.add(table, base + REF_GENERATION, 1) + 1;
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
