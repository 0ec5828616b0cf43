/**
 * Sorted storage for vm map entries (Mach `vm_map_store`): lookup by address and first-fit
 * search. Kept apart from vm-map.ts so the data structure can change without touching semantics.
 */
import type { MemoryObject } from './memory-object.js';

/**
 * One mapped range [start, end) of a memory object, with its attributes (Mach `vm_map_entry`).
 * A class, so every entry of every map has one shape and the walks over them stay monomorphic.
 */
export class VmMapEntry {
  constructor(
    public start: number,
    public end: number,
    public object: MemoryObject,
    /** Byte offset of `start` within the object. */
    public offset: number,
    public protection: number,
    public maxProtection: number,
    public inheritance: number,
  ) {}
}

export class VmMapStore {
  readonly #entries: VmMapEntry[] = [];

  get count(): number { return this.#entries.length; }

  at(index: number): VmMapEntry | undefined { return this.#entries[index]; }

  /** Index of the entry containing `address`, or of the first one above it (may be `count`). */
  firstEndingAfter(address: number): number {
    let low = 0;
    let high = this.#entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#entries[middle]!.end <= address) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** True when no entry intersects [start, end). */
  isFree(start: number, end: number): boolean {
    const next = this.#entries[this.firstEndingAfter(start)];
    return next === undefined || next.start >= end;
  }

  /** The lowest address >= `min` where `size` bytes fit below `max`, first fit. */
  findSpace(size: number, min: number, max: number): number | undefined {
    let candidate = min;
    for (let index = this.firstEndingAfter(min); index < this.#entries.length; index++) {
      const entry = this.#entries[index]!;
      if (entry.start - candidate >= size) break;
      candidate = Math.max(candidate, entry.end);
    }
    return candidate + size <= max ? candidate : undefined;
  }

  /** Inserts an entry that intersects none, keeping address order. */
  insert(entry: VmMapEntry): void {
    this.#entries.splice(this.firstEndingAfter(entry.start), 0, entry);
  }

  /**
   * Appends entries in address order above every entry held (a fork filling an empty map: no
   * search, no splice).
   */
  append(entries: readonly VmMapEntry[]): void {
    for (let index = 0; index < entries.length; index++) this.#entries.push(entries[index]!);
  }

  insertAt(index: number, entry: VmMapEntry): void {
    this.#entries.splice(index, 0, entry);
  }

  /** Removes entries [from, to) and returns them. */
  removeRange(from: number, to: number): VmMapEntry[] {
    return this.#entries.splice(from, to - from);
  }

  [Symbol.iterator](): IterableIterator<VmMapEntry> { return this.#entries[Symbol.iterator](); }

  /** The entries in address order, for a walk that must not allocate an iterator per step. */
  get all(): readonly VmMapEntry[] { return this.#entries; }
}
