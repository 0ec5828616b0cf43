/**
 * Memory objects (Mach `vm_object` backed by its default pager): a SharedArrayBuffer owned by
 * the pager of the node that allocated it, plus a reference count that lives in that pager's
 * shared reference table, so any node maps or unmaps it with a single Atomics operation.
 */
import {
  REF_TABLE_SLOTS, type MemoryObjectName, type MemoryObjectRef,
} from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';

export class MemoryObject {
  readonly home: NodeId;
  readonly slot: number;
  readonly sab: SharedArrayBuffer;

  constructor(ref: MemoryObjectRef) {
    this.home = ref.home;
    this.slot = ref.slot;
    this.sab = ref.sab;
  }

  get size(): number { return this.sab.byteLength; }

  /** Unique across the kernel; equal keys mean the same memory. */
  get key(): number { return this.home * REF_TABLE_SLOTS + this.slot; }

  get label(): string { return `${this.home}:${this.slot}`; }

  toRef(): MemoryObjectRef { return { home: this.home, slot: this.slot, sab: this.sab }; }

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
    Atomics.add(this.#table(object.home), object.slot, 1);
  }

  /** Drops one reference; true when it was the last, and the home pager must free the object. */
  release(object: MemoryObjectName): boolean {
    const before = Atomics.sub(this.#table(object.home), object.slot, 1);
    if (before <= 0) throw new Error(`memory object ${object.home}:${object.slot} over-released`);
    return before === 1;
  }

  count(object: MemoryObjectName): number {
    return Atomics.load(this.#table(object.home), object.slot);
  }

  /** Sets the count of a freshly allocated slot (home pager only). */
  initialize(object: MemoryObjectName, count: number): void {
    Atomics.store(this.#table(object.home), object.slot, count);
  }
}
