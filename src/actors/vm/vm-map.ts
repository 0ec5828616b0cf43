/**
 * A task's address space (Mach `vm_map`): page rounding, range checks, clipping (splitting
 * entries so attributes can differ within what was one region), and the vm_* routines over
 * its entries. Every routine checks the whole request before it changes anything, so a
 * rejected call leaves the map exactly as it was.
 */
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_NO_SPACE, KERN_PROTECTION_FAILURE,
  KERN_SUCCESS, VM_INHERIT_DEFAULT, VM_INHERIT_LAST_VALID, VM_PROT_ALL, VM_PROT_DEFAULT,
  VM_PROT_READ, VM_PROT_WRITE,
} from '../../shared/constants.js';
import { isVmQuantity } from '../../shared/types.js';
import type { MemoryObject } from './memory-object.js';
import { KeyedTable } from './keyed-table.js';
import { VmMapEntry, VmMapStore } from './vm-map-store.js';

export { VmMapEntry } from './vm-map-store.js';

/**
 * Told when an object becomes mapped by this map and when no entry of it maps the object any
 * more, before the caller drops the map's reference (the node keeps its buffers by these).
 */
export interface VmMapHooks {
  mapped(object: MemoryObject): void;
  unmapped(object: MemoryObject): void;
}

/** Makes the object behind a new allocation (the pager's memory_object_create). */
export type ObjectFactory = (size: number) => { kr: number; object?: MemoryObject };

/** [start, end) after the seed's rounding, or the code that rejects the range. */
type PageRange = { kr: typeof KERN_SUCCESS; start: number; end: number } | { kr: number; start?: undefined; end?: undefined };

/** Entries [first, last) cover a range exactly, with no unallocated page between them. */
type Coverage = { kr: typeof KERN_SUCCESS; first: number; last: number } | { kr: number; first?: undefined; last?: undefined };

export class VmMap {
  readonly pageSize: number;
  /** Page zero stays unmapped, so address 0 is never valid memory. */
  readonly minAddress: number;
  readonly maxAddress: number;
  readonly #store = new VmMapStore();
  /** How many entries of this map reference each object: the map holds one object reference while > 0. */
  readonly #mapped = new KeyedTable<{ readonly object: MemoryObject; entries: number }>();
  #virtualSize = 0;

  readonly #hooks: VmMapHooks | undefined;

  constructor(pageSize: number, maxAddress = 2 ** 47, hooks?: VmMapHooks) {
    this.pageSize = pageSize;
    this.minAddress = pageSize;
    this.maxAddress = maxAddress;
    this.#hooks = hooks;
  }

  get regionCount(): number { return this.#store.count; }
  get virtualSize(): number { return this.#virtualSize; }

  truncPage(address: number): number { return address - (address % this.pageSize); }
  roundPage(address: number): number { return this.truncPage(address + this.pageSize - 1); }

  /**
   * The seed's rounding: start at the beginning of the page holding `address`, end at the end of
   * the page holding `address + size - 1`. A size of 0 is the empty range at that page.
   */
  pageRange(address: unknown, size: unknown): PageRange {
    if (!isVmQuantity(address)) return { kr: KERN_INVALID_ADDRESS };
    if (!isVmQuantity(size)) return { kr: KERN_INVALID_ARGUMENT };
    const start = this.truncPage(address);
    const end = size === 0 ? start : this.roundPage(address + size);
    if (!Number.isSafeInteger(end) || end > this.maxAddress) return { kr: KERN_INVALID_ADDRESS };
    return { kr: KERN_SUCCESS, start, end };
  }

  /** The entries covering [start, end) exactly; KERN_INVALID_ADDRESS if any page is unallocated. */
  #cover(start: number, end: number): Coverage {
    const first = this.#store.firstEndingAfter(start);
    let expected = start;
    let index = first;
    while (expected < end) {
      const entry = this.#store.at(index);
      if (entry === undefined || entry.start > expected) return { kr: KERN_INVALID_ADDRESS };
      expected = entry.end;
      index++;
    }
    return { kr: KERN_SUCCESS, first, last: index };
  }

  /** Checks a range and returns its covering entries, or the rejecting code. */
  #resolve(address: unknown, size: unknown): Coverage & { start?: number; end?: number } {
    const range = this.pageRange(address, size);
    if (range.kr !== KERN_SUCCESS) return { kr: range.kr };
    const cover = this.#cover(range.start!, range.end!);
    return cover.kr === KERN_SUCCESS ? { ...cover, start: range.start!, end: range.end! } : cover;
  }

  /**
   * Splits entries so that [start, end) begins and ends on entry boundaries (vm_map_clip_*);
   * returns the entries [first, last) inside it, none when the range holds only unallocated pages.
   */
  #clip(start: number, end: number): { first: number; last: number } {
    let first = this.#store.firstEndingAfter(start);
    const head = this.#store.at(first);
    if (head !== undefined && head.start < start) {
      this.#split(first, start);
      first++;
    }
    let last = this.#store.firstEndingAfter(end - 1);
    const tail = this.#store.at(last);
    if (tail === undefined || tail.start >= end) return { first, last };
    if (tail.end > end) this.#split(last, end);
    last++;
    return { first, last };
  }

  #split(index: number, at: number): void {
    const entry = this.#store.at(index)!;
    const upper = new VmMapEntry(at, entry.end, entry.object, entry.offset + (at - entry.start), entry.protection,
      entry.maxProtection, entry.inheritance);
    entry.end = at;
    this.#store.insertAt(index + 1, upper);
    this.#mapped.get(entry.object.key)!.entries++;
  }

  /** Records an entry's object; true when it is new to this map (`fresh` told before the hooks). */
  #map(object: MemoryObject, fresh?: (object: MemoryObject) => void): boolean {
    const key = object.key;
    const mapped = this.#mapped.get(key);
    if (mapped !== undefined) {
      mapped.entries++;
      return false;
    }
    this.#mapped.set(key, { object, entries: 1 });
    fresh?.(object);
    this.#hooks?.mapped(object);
    return true;
  }

  /** Forgets an entry's object; true when no entry of this map references it any more. */
  #unmap(object: MemoryObject): boolean {
    const mapped = this.#mapped.get(object.key)!;
    if (--mapped.entries > 0) return false;
    this.#mapped.delete(object.key);
    this.#hooks?.unmapped(object);
    return true;
  }

  /**
   * vm_allocate: zero-filled memory, protection VM_PROT_DEFAULT, maximum VM_PROT_ALL,
   * inheritance VM_INHERIT_DEFAULT (COPY).
   * Conditions: `create` is called only once the range is known to be free.
   * Returns KERN_SUCCESS with the address (0 for a size of 0); KERN_INVALID_ADDRESS for a fixed
   * address outside the map; KERN_NO_SPACE when the fixed range is in use or no room is left;
   * KERN_INVALID_ARGUMENT for a malformed size; whatever `create` returns when it fails.
   */
  allocate(address: unknown, size: unknown, anywhere: boolean, create: ObjectFactory): { kr: number; address: number } {
    if (!isVmQuantity(size)) return { kr: KERN_INVALID_ARGUMENT, address: 0 };
    if (size === 0) return { kr: KERN_SUCCESS, address: 0 };
    let start: number;
    let end: number;
    if (anywhere) {
      const length = this.roundPage(size);
      const found = this.#store.findSpace(length, this.minAddress, this.maxAddress);
      if (found === undefined) return { kr: KERN_NO_SPACE, address: 0 };
      start = found;
      end = found + length;
    } else {
      const range = this.pageRange(address, size);
      if (range.kr !== KERN_SUCCESS) return { kr: range.kr, address: 0 };
      if (range.start! < this.minAddress) return { kr: KERN_INVALID_ADDRESS, address: 0 };
      if (!this.#store.isFree(range.start!, range.end!)) return { kr: KERN_NO_SPACE, address: 0 };
      start = range.start!;
      end = range.end!;
    }
    const made = create(end - start);
    if (made.kr !== KERN_SUCCESS) return { kr: made.kr, address: 0 };
    this.enter(new VmMapEntry(start, start + made.object!.size, made.object!, 0, VM_PROT_DEFAULT, VM_PROT_ALL,
      VM_INHERIT_DEFAULT));
    return { kr: KERN_SUCCESS, address: start };
  }

  /**
   * vm_map of a memory object anywhere: maps [offset, offset + size) of `object` at the lowest
   * free address, protection VM_PROT_DEFAULT, inheritance VM_INHERIT_DEFAULT (out-of-line
   * message memory arriving in a receiver).
   * Conditions: the caller holds the object reference this map will own if the object is new to it.
   * Returns KERN_SUCCESS with the address; KERN_NO_SPACE when no room is left.
   */
  mapObject(object: MemoryObject, offset: number, size: number): { kr: number; address: number; fresh: boolean } {
    const length = this.roundPage(size);
    const start = this.#store.findSpace(length, this.minAddress, this.maxAddress);
    if (start === undefined) return { kr: KERN_NO_SPACE, address: 0, fresh: false };
    const fresh = this.enter(new VmMapEntry(start, start + length, object, offset, VM_PROT_DEFAULT, VM_PROT_ALL,
      VM_INHERIT_DEFAULT));
    return { kr: KERN_SUCCESS, address: start, fresh };
  }

  /**
   * The memory object and offset behind [address, address + size), which must be readable and
   * lie in one object (out-of-line memory sent shared).
   * Returns as `view`.
   */
  objectRange(address: unknown, size: unknown): { kr: number; object?: MemoryObject; offset?: number } {
    const view = this.view(address, size);
    if (view.kr !== KERN_SUCCESS) return { kr: view.kr };
    const entry = this.#store.at(this.#store.firstEndingAfter(address as number))!;
    return { kr: KERN_SUCCESS, object: entry.object, offset: view.byteOffset! };
  }

  /**
   * Enters an entry into a free range (allocation, out-of-line memory). The caller holds the
   * object reference this map will own if the object is new to it.
   * Returns true when the object was new to this map.
   */
  enter(entry: VmMapEntry): boolean {
    this.#store.insert(entry);
    this.#virtualSize += entry.end - entry.start;
    return this.#map(entry.object);
  }

  /**
   * Fills this empty map with a child's entries (vm_map_fork), in address order and disjoint, as
   * drawn from a parent's map or an image. `fresh` is told of each object new to the map before
   * the node records the map holding it: it takes the reference the map will own, if needed.
   */
  fill(entries: readonly VmMapEntry[], fresh?: (object: MemoryObject) => void): void {
    if (this.#store.count !== 0) throw new Error('vm map: fill of a map that is not empty');
    this.#store.append(entries);
    let size = 0;
    for (let index = 0; index < entries.length; index++) {
      const entry = entries[index]!;
      size += entry.end - entry.start;
      this.#map(entry.object, fresh);
    }
    this.#virtualSize = size;
  }

  /**
   * vm_deallocate: unmaps whatever is mapped in the range, in this map only; other maps sharing
   * the memory keep it. Unallocated pages in the range are no error, so deallocating twice
   * succeeds: xnu, GNU Mach and OSF all remove through vm_map_remove/vm_map_delete, which skips
   * holes. (xnu and GNU Mach also clamp a range past the map's bounds; we keep refusing it.)
   * Returns KERN_SUCCESS with the objects this map no longer references at all (the caller
   * releases their references); KERN_INVALID_ADDRESS for a malformed address or a range that
   * ends past the address space; KERN_INVALID_ARGUMENT for a malformed size.
   */
  deallocate(address: unknown, size: unknown): { kr: number; unmapped: MemoryObject[] } {
    const range = this.pageRange(address, size);
    if (range.kr !== KERN_SUCCESS) return { kr: range.kr, unmapped: [] };
    if (range.start === range.end) return { kr: KERN_SUCCESS, unmapped: [] };
    const { first, last } = this.#clip(range.start!, range.end!);
    const unmapped: MemoryObject[] = [];
    for (const entry of this.#store.removeRange(first, last)) {
      this.#virtualSize -= entry.end - entry.start;
      if (this.#unmap(entry.object)) unmapped.push(entry.object);
    }
    return { kr: KERN_SUCCESS, unmapped };
  }

  /** Unmaps everything (task termination); returns every object the map referenced. */
  clear(): MemoryObject[] {
    const objects = this.#mapped.values().map((mapped) => mapped.object);
    this.#store.removeRange(0, this.#store.count);
    this.#mapped.clear();
    for (const object of objects) this.#hooks?.unmapped(object);
    this.#virtualSize = 0;
    return objects;
  }

  /**
   * vm_protect: sets the current protection, or with `setMaximum` the maximum (which also lowers
   * the current protection to fit). A maximum can only be lowered.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for a protection outside VM_PROT_ALL;
   * KERN_INVALID_ADDRESS for a range with an unallocated page; KERN_PROTECTION_FAILURE when the
   * new protection exceeds some entry's maximum.
   */
  protect(address: unknown, size: unknown, setMaximum: boolean, protection: unknown): number {
    if (!isProtection(protection)) return KERN_INVALID_ARGUMENT;
    const cover = this.#resolve(address, size);
    if (cover.kr !== KERN_SUCCESS) return cover.kr;
    for (let index = cover.first!; index < cover.last!; index++) {
      const entry = this.#store.at(index)!;
      if ((protection & entry.maxProtection) !== protection) return KERN_PROTECTION_FAILURE;
    }
    if (cover.start === cover.end) return KERN_SUCCESS;
    const { first, last } = this.#clip(cover.start!, cover.end!);
    for (let index = first; index < last; index++) {
      const entry = this.#store.at(index)!;
      if (setMaximum) {
        entry.maxProtection = protection;
        entry.protection &= protection;
      } else {
        entry.protection = protection;
      }
    }
    return KERN_SUCCESS;
  }

  /**
   * vm_inherit: sets the inheritance attribute, used when a child task is created.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for a value other than VM_INHERIT_SHARE, COPY or
   * NONE; KERN_INVALID_ADDRESS for a range with an unallocated page.
   */
  inherit(address: unknown, size: unknown, inheritance: unknown): number {
    if (!Number.isInteger(inheritance) || (inheritance as number) < 0 ||
        (inheritance as number) > VM_INHERIT_LAST_VALID) return KERN_INVALID_ARGUMENT;
    const cover = this.#resolve(address, size);
    if (cover.kr !== KERN_SUCCESS) return cover.kr;
    if (cover.start === cover.end) return KERN_SUCCESS;
    const { first, last } = this.#clip(cover.start!, cover.end!);
    for (let index = first; index < last; index++) this.#store.at(index)!.inheritance = inheritance as number;
    return KERN_SUCCESS;
  }

  /**
   * vm_region: the entry holding `address`, or the first one above it.
   * Returns KERN_INVALID_ADDRESS when there is none (or the address is malformed).
   */
  region(address: unknown): { kr: number; entry?: VmMapEntry } {
    if (!isVmQuantity(address)) return { kr: KERN_INVALID_ADDRESS };
    const entry = this.#store.at(this.#store.firstEndingAfter(address));
    return entry === undefined ? { kr: KERN_INVALID_ADDRESS } : { kr: KERN_SUCCESS, entry };
  }

  /** The entries in address order (the map's own: a caller must not change them). */
  entries(): readonly VmMapEntry[] { return this.#store.all; }

  /** Checks that every page of [address, address + size) is mapped with `access`. */
  #access(address: unknown, size: unknown, access: number): Coverage {
    const cover = this.#resolve(address, size);
    if (cover.kr !== KERN_SUCCESS) return cover;
    for (let index = cover.first!; index < cover.last!; index++) {
      if ((this.#store.at(index)!.protection & access) !== access) return { kr: KERN_PROTECTION_FAILURE };
    }
    return cover;
  }

  /** Visits the object bytes behind [address, address + length): (entry bytes, offset in data). */
  #segments(address: number, length: number, first: number, visit: (bytes: Uint8Array, at: number) => void): void {
    let index = first;
    let cursor = address;
    const end = address + length;
    while (cursor < end) {
      const entry = this.#store.at(index++)!;
      const stop = Math.min(end, entry.end);
      const from = entry.offset + (cursor - entry.start);
      visit(new Uint8Array(entry.object.sab, from, stop - cursor), cursor - address);
      cursor = stop;
    }
  }

  /**
   * vm_read: copies `size` bytes out of the map.
   * Returns KERN_SUCCESS with the data; KERN_INVALID_ADDRESS for an unallocated page;
   * KERN_PROTECTION_FAILURE for a page without VM_PROT_READ.
   */
  read(address: unknown, size: unknown): { kr: number; data?: Uint8Array } {
    const cover = this.#access(address, size, VM_PROT_READ);
    if (cover.kr !== KERN_SUCCESS) return { kr: cover.kr };
    const data = new Uint8Array(size as number);
    this.#segments(address as number, size as number, cover.first!, (bytes, at) => data.set(bytes, at));
    return { kr: KERN_SUCCESS, data };
  }

  /**
   * vm_write: writes `data` at `address`, as if the task wrote it itself.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT when data is not bytes; KERN_INVALID_ADDRESS for
   * an unallocated page; KERN_PROTECTION_FAILURE for a page without VM_PROT_WRITE.
   */
  write(address: unknown, data: unknown): number {
    if (!(data instanceof Uint8Array)) return KERN_INVALID_ARGUMENT;
    const cover = this.#access(address, data.byteLength, VM_PROT_WRITE);
    if (cover.kr !== KERN_SUCCESS) return cover.kr;
    this.#segments(address as number, data.byteLength, cover.first!, (bytes, at) =>
      bytes.set(data.subarray(at, at + bytes.byteLength)));
    return KERN_SUCCESS;
  }

  /**
   * vm_copy: a read of the source followed by a write of the destination; the ranges may overlap.
   * Returns KERN_SUCCESS; KERN_INVALID_ADDRESS for an unallocated page in either range;
   * KERN_PROTECTION_FAILURE when the source is not readable or the destination not writable.
   */
  copy(source: unknown, size: unknown, dest: unknown): number {
    const from = this.#access(source, size, VM_PROT_READ);
    if (from.kr !== KERN_SUCCESS) return from.kr;
    const to = this.#access(dest, size, VM_PROT_WRITE);
    if (to.kr !== KERN_SUCCESS) return to.kr;
    const data = this.read(source, size).data!;
    return this.write(dest, data);
  }

  /**
   * A direct view of task memory: the object buffer and byte range behind [address, address + size).
   * Returns KERN_SUCCESS; KERN_INVALID_ADDRESS for an unallocated page (also when `size` is 0:
   * the page holding `address` must be mapped, for the view needs its buffer); KERN_PROTECTION_FAILURE
   * without VM_PROT_READ; KERN_INVALID_ARGUMENT when the range spans more than one memory
   * object (no single buffer holds it).
   */
  view(address: unknown, size: unknown): { kr: number; sab?: SharedArrayBuffer; byteOffset?: number; length?: number } {
    const cover = this.#access(address, size, VM_PROT_READ);
    if (cover.kr !== KERN_SUCCESS) return { kr: cover.kr };
    const head = this.#store.at(cover.first!);
    // With size 0 the cover is empty and `head` may be the next entry above an unmapped address.
    if (head === undefined || head.start > (address as number)) return { kr: KERN_INVALID_ADDRESS };
    for (let index = cover.first! + 1; index < cover.last!; index++) {
      const entry = this.#store.at(index)!;
      const previous = this.#store.at(index - 1)!;
      if (entry.object !== previous.object && entry.object.key !== previous.object.key) return { kr: KERN_INVALID_ARGUMENT };
      if (entry.offset !== previous.offset + (previous.end - previous.start)) return { kr: KERN_INVALID_ARGUMENT };
    }
    const byteOffset = head.offset + ((address as number) - head.start);
    return { kr: KERN_SUCCESS, sab: head.object.sab, byteOffset, length: size as number };
  }
}

function isProtection(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && ((value as number) & ~VM_PROT_ALL) === 0;
}
