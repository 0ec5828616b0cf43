/**
 * Pure unit tests of task address spaces (vm-map.ts over vm-map-store.ts) in one realm, with
 * memory objects made by a fake factory instead of a pager; the property test at the end checks
 * the map against a page-by-page model.
 */
import { assert, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MemoryObject } from '../src/actors/vm/memory-object.js';
import { VmMap, type ObjectFactory } from '../src/actors/vm/vm-map.js';
import { VmMapStore, type VmMapEntry } from '../src/actors/vm/vm-map-store.js';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_NO_SPACE, KERN_PROTECTION_FAILURE,
  KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_DONATE_COPY, VM_INHERIT_NONE,
  VM_INHERIT_SHARE, VM_PROT_ALL, VM_PROT_DEFAULT, VM_PROT_EXECUTE, VM_PROT_NONE, VM_PROT_READ,
  VM_PROT_WRITE,
} from '../src/shared/constants.js';
import type { NodeId } from '../src/shared/types.js';

const PAGE_SIZES = [4096, 16384] as const;

/** A factory that makes SAB-backed objects in slots 0, 1, 2… and remembers what it made. */
function fakeFactory(): { create: ObjectFactory; made: MemoryObject[] } {
  const made: MemoryObject[] = [];
  const create: ObjectFactory = (size) => {
    const object = new MemoryObject({ home: 0 as NodeId, slot: made.length, generation: 1, sab: new SharedArrayBuffer(size) });
    made.push(object);
    return { kr: KERN_SUCCESS, object };
  };
  return { create, made };
}

/** The entries as plain records (object by key), for deep-equality checks. */
function entriesOf(map: VmMap): object[] {
  return [...map.entries()].map((entry) => ({
    start: entry.start, end: entry.end, object: entry.object.key, offset: entry.offset,
    protection: entry.protection, maxProtection: entry.maxProtection, inheritance: entry.inheritance,
  }));
}

function stateOf(map: VmMap): { entries: object[]; virtualSize: number; regionCount: number } {
  return { entries: entriesOf(map), virtualSize: map.virtualSize, regionCount: map.regionCount };
}

function allocateAt(map: VmMap, create: ObjectFactory, address: number, size: number): number {
  const { kr, address: start } = map.allocate(address, size, false, create);
  expect(kr).toBe(KERN_SUCCESS);
  return start;
}

function entryAt(map: VmMap, address: number): VmMapEntry {
  const { kr, entry } = map.region(address);
  expect(kr).toBe(KERN_SUCCESS);
  assert(entry !== undefined);
  return entry;
}

describe('VmMap.pageRange (the seed rounding rule)', () => {
  it.each(PAGE_SIZES)('pageRange starts at the page holding address and ends at the end of the page holding address + size - 1 (page size %i)', (pageSize) => {
    const map = new VmMap(pageSize);
    const base = 16 * pageSize;
    expect(map.pageRange(base + 100, 1)).toEqual({ kr: KERN_SUCCESS, start: base, end: base + pageSize });
    expect(map.pageRange(base + pageSize - 1, 1)).toEqual({ kr: KERN_SUCCESS, start: base, end: base + pageSize });
    expect(map.pageRange(base + pageSize - 1, 2)).toEqual({ kr: KERN_SUCCESS, start: base, end: base + 2 * pageSize });
    expect(map.pageRange(base, pageSize)).toEqual({ kr: KERN_SUCCESS, start: base, end: base + pageSize });
    expect(map.pageRange(base, pageSize + 1)).toEqual({ kr: KERN_SUCCESS, start: base, end: base + 2 * pageSize });
    expect(map.pageRange(base + 1, 0)).toEqual({ kr: KERN_SUCCESS, start: base, end: base });
  });

  it('pageRange returns KERN_INVALID_ADDRESS for a malformed address or a range past the maximum, KERN_INVALID_ARGUMENT for a malformed size', () => {
    const map = new VmMap(4096, 64 * 4096);
    for (const address of [-1, 1.5, Number.NaN, 2 ** 53, '4096', undefined]) {
      expect(map.pageRange(address, 4096).kr).toBe(KERN_INVALID_ADDRESS);
    }
    for (const size of [-1, 0.5, Number.NaN, 2 ** 53, '1', null]) {
      expect(map.pageRange(4096, size).kr).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(map.pageRange(63 * 4096, 4096)).toEqual({ kr: KERN_SUCCESS, start: 63 * 4096, end: 64 * 4096 });
    expect(map.pageRange(63 * 4096 + 1, 4096).kr).toBe(KERN_INVALID_ADDRESS);
    expect(map.pageRange(2 ** 52, 2 ** 52).kr).toBe(KERN_INVALID_ADDRESS);
  });
});

describe('VmMap.allocate (vm_allocate)', () => {
  it('allocate anywhere returns KERN_SUCCESS with page-aligned, non-overlapping, zero-filled entries with VM_PROT_DEFAULT, VM_PROT_ALL and VM_INHERIT_COPY', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    const sizes = [1, 4096, 4097, 3 * 4096 - 5];
    const starts = sizes.map((size) => {
      const { kr, address } = map.allocate(0, size, true, create);
      expect(kr).toBe(KERN_SUCCESS);
      return address;
    });
    expect(starts[0]).toBe(map.minAddress);
    const entries = [...map.entries()];
    expect(entries.map((entry) => entry.start)).toEqual(starts);
    expect(entries.map((entry) => entry.end - entry.start)).toEqual([4096, 4096, 8192, 12288]);
    for (const [index, entry] of entries.entries()) {
      expect(entry.start % 4096).toBe(0);
      if (index > 0) expect(entry.start).toBeGreaterThanOrEqual(entries[index - 1]!.end);
      expect(entry).toMatchObject({
        offset: 0, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY,
      });
      expect(entry.object).toBe(made[index]);
      expect(map.read(entry.start, entry.end - entry.start).data!.every((byte) => byte === 0)).toBe(true);
    }
    expect(map.virtualSize).toBe(28 * 1024);
    expect(map.regionCount).toBe(4);
  });

  it('allocate anywhere takes the lowest hole that fits, never page 0', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const pages = [0, 1, 2].map(() => map.allocate(0, 4096, true, create).address);
    expect(pages).toEqual([4096, 8192, 12288]);
    expect(map.deallocate(8192, 4096).kr).toBe(KERN_SUCCESS);
    expect(map.allocate(0, 8192, true, create)).toEqual({ kr: KERN_SUCCESS, address: 16384 });
    expect(map.allocate(0, 4096, true, create)).toEqual({ kr: KERN_SUCCESS, address: 8192 });
  });

  it('allocate anywhere returns KERN_NO_SPACE when no hole is large enough and changes nothing', () => {
    const map = new VmMap(4096, 8 * 4096);
    const { create, made } = fakeFactory();
    allocateAt(map, create, 4 * 4096, 4096);
    const before = stateOf(map);
    expect(map.allocate(0, 4 * 4096, true, create)).toEqual({ kr: KERN_NO_SPACE, address: 0 });
    expect(stateOf(map)).toEqual(before);
    expect(made).toHaveLength(1);
    expect(map.allocate(0, 3 * 4096, true, create)).toEqual({ kr: KERN_SUCCESS, address: 4096 });
  });

  it.each(PAGE_SIZES)('allocate at a fixed address maps exactly the pages the seed rounding names (page size %i)', (pageSize) => {
    const map = new VmMap(pageSize);
    const { create } = fakeFactory();
    const base = 16 * pageSize;
    expect(map.allocate(base + 100, 1, false, create)).toEqual({ kr: KERN_SUCCESS, address: base });
    expect(map.allocate(base + 3 * pageSize - 1, 2, false, create)).toEqual({ kr: KERN_SUCCESS, address: base + 2 * pageSize });
    expect(entriesOf(map)).toMatchObject([
      { start: base, end: base + pageSize },
      { start: base + 2 * pageSize, end: base + 4 * pageSize },
    ]);
  });

  it('allocate at a fixed address returns KERN_NO_SPACE for any overlap and changes nothing', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    allocateAt(map, create, 0x10000, 2 * 4096);
    const before = stateOf(map);
    for (const [address, size] of [
      [0x10000 - 4096, 2 * 4096], [0x10000 + 4096, 1], [0x10000 + 2 * 4096 - 1, 2], [0x10000 - 4096, 4 * 4096],
      [0x10000 + 100, 1],
    ] as const) {
      expect(map.allocate(address, size, false, create)).toEqual({ kr: KERN_NO_SPACE, address: 0 });
    }
    expect(stateOf(map)).toEqual(before);
    expect(made).toHaveLength(1);
  });

  it('allocate at a fixed address returns KERN_INVALID_ADDRESS in page 0, past the maximum or for a malformed address, and changes nothing', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    for (const [address, size] of [
      [0, 4096], [100, 1], [4095, 2], [2 ** 47, 4096], [2 ** 47 - 4096, 8192], [-4096, 4096], [1.5, 4096],
    ] as const) {
      expect(map.allocate(address, size, false, create)).toEqual({ kr: KERN_INVALID_ADDRESS, address: 0 });
    }
    expect(stateOf(map)).toEqual({ entries: [], virtualSize: 0, regionCount: 0 });
    expect(made).toHaveLength(0);
    expect(map.allocate(2 ** 47 - 4096, 4096, false, create)).toEqual({ kr: KERN_SUCCESS, address: 2 ** 47 - 4096 });
    expect(map.allocate(4096, 1, false, create)).toEqual({ kr: KERN_SUCCESS, address: 4096 });
  });

  it('allocate of size 0 returns KERN_SUCCESS and address 0 without making an object', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    expect(map.allocate(0, 0, true, create)).toEqual({ kr: KERN_SUCCESS, address: 0 });
    expect(map.allocate(0x10000, 0, false, create)).toEqual({ kr: KERN_SUCCESS, address: 0 });
    expect(made).toHaveLength(0);
    expect(map.regionCount).toBe(0);
  });

  it('allocate returns KERN_INVALID_ARGUMENT for a malformed size and changes nothing', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    for (const size of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, '4096', null]) {
      expect(map.allocate(0, size, true, create)).toEqual({ kr: KERN_INVALID_ARGUMENT, address: 0 });
      expect(map.allocate(0x10000, size, false, create)).toEqual({ kr: KERN_INVALID_ARGUMENT, address: 0 });
    }
    expect(made).toHaveLength(0);
    expect(map.regionCount).toBe(0);
  });

  it('allocate returns the factory code when the object cannot be made and changes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    allocateAt(map, create, 0x10000, 4096);
    const before = stateOf(map);
    const refuse: ObjectFactory = () => ({ kr: KERN_RESOURCE_SHORTAGE });
    expect(map.allocate(0, 4096, true, refuse)).toEqual({ kr: KERN_RESOURCE_SHORTAGE, address: 0 });
    expect(map.allocate(0x20000, 4096, false, refuse)).toEqual({ kr: KERN_RESOURCE_SHORTAGE, address: 0 });
    expect(stateOf(map)).toEqual(before);
  });
});

describe('VmMap.deallocate (vm_deallocate)', () => {
  it('deallocate of a whole entry returns KERN_SUCCESS and the object the map no longer references', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    const address = allocateAt(map, create, 0x10000, 2 * 4096);
    expect(map.deallocate(address, 2 * 4096)).toEqual({ kr: KERN_SUCCESS, unmapped: [made[0]] });
    expect(stateOf(map)).toEqual({ entries: [], virtualSize: 0, regionCount: 0 });
  });

  it('deallocate of part of an entry splits it, the rest keeps its bytes, and the object stays mapped until its last piece goes', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4 * 4096);
    const pattern = Uint8Array.from({ length: 4 * 4096 }, (_, index) => (index * 7) & 0xff);
    expect(map.write(base, pattern)).toBe(KERN_SUCCESS);
    expect(map.deallocate(base + 4096 + 100, 1)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(entriesOf(map)).toMatchObject([
      { start: base, end: base + 4096, offset: 0, object: made[0]!.key },
      { start: base + 2 * 4096, end: base + 4 * 4096, offset: 2 * 4096, object: made[0]!.key },
    ]);
    expect(map.virtualSize).toBe(3 * 4096);
    expect(map.read(base, 4096).data).toEqual(pattern.subarray(0, 4096));
    expect(map.read(base + 2 * 4096, 2 * 4096).data).toEqual(pattern.subarray(2 * 4096));
    expect(map.read(base + 4096, 1).kr).toBe(KERN_INVALID_ADDRESS);
    expect(map.deallocate(base, 4096)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(map.deallocate(base + 2 * 4096, 2 * 4096)).toEqual({ kr: KERN_SUCCESS, unmapped: [made[0]] });
  });

  it('deallocate over unallocated pages returns KERN_SUCCESS and removes only what is mapped (vm_map_remove)', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    allocateAt(map, create, 0x10000, 4096);
    allocateAt(map, create, 0x10000 + 2 * 4096, 2 * 4096);
    const before = stateOf(map);
    expect(map.deallocate(0x10000 + 4096, 1)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(map.deallocate(0x10000 + 4 * 4096, 4096)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(stateOf(map)).toEqual(before);
    expect(map.deallocate(0x10000 - 1, 2)).toEqual({ kr: KERN_SUCCESS, unmapped: [made[0]] });
    expect(map.deallocate(0x10000 + 4096, 2 * 4096)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(entriesOf(map)).toMatchObject([{ start: 0x10000 + 3 * 4096, end: 0x10000 + 4 * 4096, offset: 4096 }]);
    expect(map.deallocate(0, 2 ** 40)).toEqual({ kr: KERN_SUCCESS, unmapped: [made[1]] });
    expect(map.deallocate(0, 2 ** 40)).toEqual({ kr: KERN_SUCCESS, unmapped: [] });
    expect(stateOf(map)).toEqual({ entries: [], virtualSize: 0, regionCount: 0 });
  });

  it('deallocate returns KERN_INVALID_ADDRESS for a range outside the address space, KERN_INVALID_ARGUMENT for a malformed size, and changes nothing', () => {
    const map = new VmMap(4096, 64 * 4096);
    const { create } = fakeFactory();
    allocateAt(map, create, 0x10000, 4096);
    const before = stateOf(map);
    for (const [address, size] of [[-1, 4096], [1.5, 4096], [63 * 4096, 2 * 4096], [0, 64 * 4096 + 1]] as const) {
      expect(map.deallocate(address, size)).toEqual({ kr: KERN_INVALID_ADDRESS, unmapped: [] });
    }
    expect(map.deallocate(0x10000, -1)).toEqual({ kr: KERN_INVALID_ARGUMENT, unmapped: [] });
    expect(stateOf(map)).toEqual(before);
  });
});

describe('VmMap.protect (vm_protect)', () => {
  it('protect with setMaximum lowers the maximum and lowers the current protection to fit', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    expect(map.protect(base, 4096, true, VM_PROT_READ | VM_PROT_EXECUTE)).toBe(KERN_SUCCESS);
    expect(entryAt(map, base)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_READ | VM_PROT_EXECUTE });
    expect(map.protect(base, 4096, false, VM_PROT_EXECUTE)).toBe(KERN_SUCCESS);
    expect(entryAt(map, base)).toMatchObject({ protection: VM_PROT_EXECUTE, maxProtection: VM_PROT_READ | VM_PROT_EXECUTE });
  });

  it('protect returns KERN_PROTECTION_FAILURE above the maximum or when raising the maximum, and changes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    expect(map.protect(base + 4096, 4096, true, VM_PROT_READ)).toBe(KERN_SUCCESS);
    const before = stateOf(map);
    expect(map.protect(base + 4096, 1, false, VM_PROT_WRITE)).toBe(KERN_PROTECTION_FAILURE);
    expect(map.protect(base + 4096, 1, true, VM_PROT_ALL)).toBe(KERN_PROTECTION_FAILURE);
    // The first entry would allow it: nothing is changed there either.
    expect(map.protect(base, 2 * 4096, false, VM_PROT_WRITE)).toBe(KERN_PROTECTION_FAILURE);
    expect(stateOf(map)).toEqual(before);
  });

  it('protect returns KERN_INVALID_ARGUMENT for a protection outside VM_PROT_ALL and changes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    const before = stateOf(map);
    for (const protection of [8, 0x10, -1, 1.5, Number.NaN, '1', null]) {
      expect(map.protect(base, 4096, false, protection)).toBe(KERN_INVALID_ARGUMENT);
      expect(map.protect(base, 4096, true, protection)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(stateOf(map)).toEqual(before);
  });

  it('protect of the middle of an entry splits it into three with consecutive offsets', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 3 * 4096);
    expect(map.protect(base + 4096 + 10, 4086, false, VM_PROT_NONE)).toBe(KERN_SUCCESS);
    expect(entriesOf(map)).toEqual([
      { start: base, end: base + 4096, object: made[0]!.key, offset: 0, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY },
      { start: base + 4096, end: base + 2 * 4096, object: made[0]!.key, offset: 4096, protection: VM_PROT_NONE, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY },
      { start: base + 2 * 4096, end: base + 3 * 4096, object: made[0]!.key, offset: 2 * 4096, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY },
    ]);
    expect(map.virtualSize).toBe(3 * 4096);
  });
});

describe('VmMap.inherit (vm_inherit)', () => {
  it.each(PAGE_SIZES)('inherit of (base + 100, 1) sets one page and (base + pageSize - 1, 2) two pages (page size %i)', (pageSize) => {
    const map = new VmMap(pageSize);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 16 * pageSize, 6 * pageSize);
    expect(map.inherit(base + 100, 1, VM_INHERIT_SHARE)).toBe(KERN_SUCCESS);
    expect(map.inherit(base + 3 * pageSize - 1, 2, VM_INHERIT_NONE)).toBe(KERN_SUCCESS);
    expect(entriesOf(map)).toMatchObject([
      { start: base, end: base + pageSize, inheritance: VM_INHERIT_SHARE },
      { start: base + pageSize, end: base + 2 * pageSize, inheritance: VM_INHERIT_COPY },
      { start: base + 2 * pageSize, end: base + 4 * pageSize, inheritance: VM_INHERIT_NONE },
      { start: base + 4 * pageSize, end: base + 6 * pageSize, inheritance: VM_INHERIT_COPY },
    ]);
  });

  it('inherit returns KERN_INVALID_ARGUMENT for VM_INHERIT_DONATE_COPY, -1, 7 and "x" and changes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    const before = stateOf(map);
    for (const inheritance of [VM_INHERIT_DONATE_COPY, -1, 7, 'x', 0.5, null]) {
      expect(map.inherit(base, 4096, inheritance)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(stateOf(map)).toEqual(before);
  });

  it('inherit returns KERN_INVALID_ADDRESS for a range with an unallocated page and changes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    allocateAt(map, create, base + 2 * 4096, 4096);
    const before = stateOf(map);
    expect(map.inherit(base, 3 * 4096, VM_INHERIT_SHARE)).toBe(KERN_INVALID_ADDRESS);
    expect(map.inherit(base + 4096, 1, VM_INHERIT_SHARE)).toBe(KERN_INVALID_ADDRESS);
    expect(map.inherit(-1, 1, VM_INHERIT_SHARE)).toBe(KERN_INVALID_ADDRESS);
    expect(stateOf(map)).toEqual(before);
  });
});

describe('VmMap.region (vm_region)', () => {
  it('region returns the entry holding the address, else the next one above, else KERN_INVALID_ADDRESS', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const low = allocateAt(map, create, 0x10000, 2 * 4096);
    const high = allocateAt(map, create, 0x20000, 4096);
    expect(entryAt(map, low + 4096 + 5).start).toBe(low);
    expect(entryAt(map, 0).start).toBe(low);
    expect(entryAt(map, low + 2 * 4096).start).toBe(high);
    expect(map.region(high + 4096)).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(map.region(-1)).toEqual({ kr: KERN_INVALID_ADDRESS });
  });
});

describe('VmMap.read, write, copy and view', () => {
  it('write and read are byte-precise across two adjacent entries of different objects', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    allocateAt(map, create, base + 4096, 4096);
    const data = Uint8Array.from({ length: 100 }, (_, index) => index + 1);
    expect(map.write(base + 4096 - 50, data)).toBe(KERN_SUCCESS);
    expect(map.read(base + 4096 - 51, 102).data).toEqual(Uint8Array.from([0, ...data, 0]));
    expect(map.read(base + 4096, 50).data).toEqual(data.subarray(50));
  });

  it('write returns KERN_PROTECTION_FAILURE when any page is read-only and writes nothing', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    expect(map.protect(base + 4096, 4096, false, VM_PROT_READ)).toBe(KERN_SUCCESS);
    expect(map.write(base + 4000, new Uint8Array(200).fill(9))).toBe(KERN_PROTECTION_FAILURE);
    expect(map.read(base, 2 * 4096).data!.every((byte) => byte === 0)).toBe(true);
  });

  it('read returns KERN_PROTECTION_FAILURE for a page without VM_PROT_READ', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    expect(map.protect(base + 4096, 4096, false, VM_PROT_WRITE)).toBe(KERN_SUCCESS);
    expect(map.read(base, 4096 + 1).kr).toBe(KERN_PROTECTION_FAILURE);
    expect(map.read(base, 4096).kr).toBe(KERN_SUCCESS);
  });

  it('copy of overlapping ranges behaves as a read followed by a write, in both directions', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    const pattern = Uint8Array.from({ length: 2 * 4096 }, (_, index) => (index * 31 + 7) & 0xff);
    expect(map.write(base, pattern)).toBe(KERN_SUCCESS);
    expect(map.copy(base, 4096, base + 100)).toBe(KERN_SUCCESS);
    const forward = pattern.slice();
    forward.set(pattern.subarray(0, 4096), 100);
    expect(map.read(base, 2 * 4096).data).toEqual(forward);
    expect(map.copy(base + 100, 4096, base)).toBe(KERN_SUCCESS);
    const backward = forward.slice();
    backward.set(forward.subarray(100, 4196), 0);
    expect(map.read(base, 2 * 4096).data).toEqual(backward);
  });

  it('write returns KERN_INVALID_ARGUMENT for data that is not a Uint8Array', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    for (const data of ['abc', [1, 2, 3], { length: 1 }, 42, null, new ArrayBuffer(4)]) {
      expect(map.write(base, data)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(map.read(base, 4096).data!.every((byte) => byte === 0)).toBe(true);
  });

  it('view spans entries of one object split by protect, and returns KERN_INVALID_ARGUMENT across two objects', () => {
    const map = new VmMap(4096);
    const { create, made } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 3 * 4096);
    allocateAt(map, create, base + 3 * 4096, 4096);
    expect(map.protect(base + 4096, 4096, false, VM_PROT_READ)).toBe(KERN_SUCCESS);
    expect(map.view(base + 10, 2 * 4096)).toEqual({ kr: KERN_SUCCESS, sab: made[0]!.sab, byteOffset: 10, length: 2 * 4096 });
    expect(map.view(base + 4096 + 1, 4096)).toEqual({ kr: KERN_SUCCESS, sab: made[0]!.sab, byteOffset: 4097, length: 4096 });
    expect(map.view(base + 3 * 4096 - 1, 2)).toEqual({ kr: KERN_INVALID_ARGUMENT });
  });

  it('view returns KERN_INVALID_ARGUMENT across two objects even when their offsets line up', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 2 * 4096);
    expect(map.deallocate(base, 4096).kr).toBe(KERN_SUCCESS);
    allocateAt(map, create, base, 4096);
    expect(entriesOf(map)).toMatchObject([{ start: base, offset: 0 }, { start: base + 4096, offset: 4096 }]);
    expect(map.view(base, 2 * 4096)).toEqual({ kr: KERN_INVALID_ARGUMENT });
  });

  it('view returns KERN_INVALID_ADDRESS for unallocated memory, also for size 0 below an entry', () => {
    const map = new VmMap(4096);
    const { create } = fakeFactory();
    const base = allocateAt(map, create, 0x10000, 4096);
    expect(map.view(base - 4096, 4096)).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(map.view(base + 4096, 1)).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(map.view(base - 4096, 0)).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(map.view(base + 10, 0)).toMatchObject({ kr: KERN_SUCCESS, byteOffset: 10, length: 0 });
  });
});

describe('VmMapStore', () => {
  const entry = (start: number, end: number): VmMapEntry => ({
    start, end, object: new MemoryObject({ home: 0 as NodeId, slot: start, generation: 1, sab: new SharedArrayBuffer(0) }),
    offset: 0, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY,
  });

  it('keeps entries in address order and answers lookups, free checks and first-fit searches', () => {
    const store = new VmMapStore();
    store.insert(entry(30, 40));
    store.insert(entry(10, 20));
    store.insert(entry(20, 25));
    expect([...store].map((item) => item.start)).toEqual([10, 20, 30]);
    expect(store.firstEndingAfter(0)).toBe(0);
    expect(store.firstEndingAfter(19)).toBe(0);
    expect(store.firstEndingAfter(20)).toBe(1);
    expect(store.firstEndingAfter(27)).toBe(2);
    expect(store.firstEndingAfter(40)).toBe(3);
    expect(store.isFree(25, 30)).toBe(true);
    expect(store.isFree(24, 30)).toBe(false);
    expect(store.isFree(25, 31)).toBe(false);
    expect(store.findSpace(5, 10, 100)).toBe(25);
    expect(store.findSpace(6, 10, 100)).toBe(40);
    expect(store.findSpace(6, 0, 100)).toBe(0);
    expect(store.findSpace(61, 10, 100)).toBeUndefined();
    expect(store.removeRange(0, 2).map((item) => item.start)).toEqual([10, 20]);
    expect(store.count).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: random vm_allocate / vm_deallocate / vm_protect / vm_inherit sequences against a
// page-by-page model.

const PS = 4096;
const PAGES = 48;

interface PageModel { object: number; offset: number; protection: number; maxProtection: number; inheritance: number }

type Op =
  | { call: 'allocate'; address: unknown; size: unknown; anywhere: boolean }
  | { call: 'deallocate'; address: unknown; size: unknown }
  | { call: 'protect'; address: unknown; size: unknown; setMaximum: boolean; protection: unknown }
  | { call: 'inherit'; address: unknown; size: unknown; inheritance: unknown };

const isQuantity = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/** Page indices [first, last) of the seed rounding, or the rejecting code (as pageRange orders them). */
function modelRange(address: unknown, size: unknown): { kr: number; first: number; last: number } {
  if (!isQuantity(address)) return { kr: KERN_INVALID_ADDRESS, first: 0, last: 0 };
  if (!isQuantity(size)) return { kr: KERN_INVALID_ARGUMENT, first: 0, last: 0 };
  const first = Math.floor(address / PS);
  const last = size === 0 ? first : Math.ceil((address + size) / PS);
  if (last > PAGES) return { kr: KERN_INVALID_ADDRESS, first: 0, last: 0 };
  return { kr: KERN_SUCCESS, first, last };
}

function pagesOf(first: number, last: number): number[] {
  return Array.from({ length: last - first }, (_, index) => first + index);
}

const addressArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.integer({ min: 0, max: PAGES + 4 }), fc.constantFrom(0, 0, 1, 100, PS - 1))
    .map(([page, offset]) => page * PS + offset) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 1.5, Number.NaN, 2 ** 53) },
);
const sizeArb = fc.oneof(
  { weight: 10, arbitrary: fc.tuple(fc.integer({ min: 0, max: 8 }), fc.constantFrom(0, 0, 1, -1))
    .map(([pages, delta]) => Math.max(0, pages * PS + delta)) },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 0.5, Number.NaN, 2 ** 53) },
);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ call: fc.constant('allocate' as const), address: addressArb, size: sizeArb, anywhere: fc.boolean() }),
  fc.record({ call: fc.constant('deallocate' as const), address: addressArb, size: sizeArb }),
  fc.record({
    call: fc.constant('protect' as const), address: addressArb, size: sizeArb, setMaximum: fc.boolean(),
    protection: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 7 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(8, -1, 1.5) }),
  }),
  fc.record({
    call: fc.constant('inherit' as const), address: addressArb, size: sizeArb,
    inheritance: fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 2 }) }, { weight: 1, arbitrary: fc.constantFrom<unknown>(3, -1, 7, 'x') }),
  }),
);

/** Applies `op` to the model; returns the expected code (and address for allocate). */
function applyToModel(model: (PageModel | undefined)[], op: Op, nextObject: number): { kr: number; address?: number } {
  const apply = (first: number, last: number, change: (page: PageModel) => void) => {
    for (const page of pagesOf(first, last)) change(model[page]!);
  };
  switch (op.call) {
    case 'allocate': {
      if (!isQuantity(op.size)) return { kr: KERN_INVALID_ARGUMENT, address: 0 };
      if (op.size === 0) return { kr: KERN_SUCCESS, address: 0 };
      let first: number;
      let last: number;
      if (op.anywhere) {
        const length = Math.ceil(op.size / PS);
        const found = pagesOf(1, PAGES - length + 1).find((start) => pagesOf(start, start + length).every((page) => model[page] === undefined));
        if (found === undefined) return { kr: KERN_NO_SPACE, address: 0 };
        first = found;
        last = found + length;
      } else {
        const range = modelRange(op.address, op.size);
        if (range.kr !== KERN_SUCCESS) return { kr: range.kr, address: 0 };
        if (range.first < 1) return { kr: KERN_INVALID_ADDRESS, address: 0 };
        if (pagesOf(range.first, range.last).some((page) => model[page] !== undefined)) return { kr: KERN_NO_SPACE, address: 0 };
        ({ first, last } = range);
      }
      for (const page of pagesOf(first, last)) {
        model[page] = {
          object: nextObject, offset: (page - first) * PS,
          protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY,
        };
      }
      return { kr: KERN_SUCCESS, address: first * PS };
    }
    case 'deallocate': {
      const range = modelRange(op.address, op.size);
      if (range.kr !== KERN_SUCCESS) return range;
      // Unallocated pages are no error: what is mapped goes (vm_map_remove).
      for (const page of pagesOf(range.first, range.last)) model[page] = undefined;
      return { kr: KERN_SUCCESS };
    }
    case 'protect': {
      const { protection } = op;
      if (!Number.isInteger(protection) || (protection as number) < 0 || (protection as number) > VM_PROT_ALL) return { kr: KERN_INVALID_ARGUMENT };
      const range = modelRange(op.address, op.size);
      if (range.kr !== KERN_SUCCESS) return range;
      const pages = pagesOf(range.first, range.last);
      if (pages.some((page) => model[page] === undefined)) return { kr: KERN_INVALID_ADDRESS };
      const value = protection as number;
      if (pages.some((page) => (value & model[page]!.maxProtection) !== value)) return { kr: KERN_PROTECTION_FAILURE };
      apply(range.first, range.last, (page) => {
        if (op.setMaximum) {
          page.maxProtection = value;
          page.protection &= value;
        } else {
          page.protection = value;
        }
      });
      return { kr: KERN_SUCCESS };
    }
    case 'inherit': {
      const { inheritance } = op;
      if (inheritance !== VM_INHERIT_SHARE && inheritance !== VM_INHERIT_COPY && inheritance !== VM_INHERIT_NONE) {
        return { kr: KERN_INVALID_ARGUMENT };
      }
      const range = modelRange(op.address, op.size);
      if (range.kr !== KERN_SUCCESS) return range;
      if (pagesOf(range.first, range.last).some((page) => model[page] === undefined)) return { kr: KERN_INVALID_ADDRESS };
      apply(range.first, range.last, (page) => { page.inheritance = inheritance; });
      return { kr: KERN_SUCCESS };
    }
  }
}

function applyToMap(map: VmMap, op: Op, create: ObjectFactory): { kr: number; address?: number; unmapped?: MemoryObject[] } {
  switch (op.call) {
    case 'allocate': return map.allocate(op.address, op.size, op.anywhere, create);
    case 'deallocate': return map.deallocate(op.address, op.size);
    case 'protect': return { kr: map.protect(op.address, op.size, op.setMaximum, op.protection) };
    case 'inherit': return { kr: map.inherit(op.address, op.size, op.inheritance) };
  }
}

/** The structural invariants, then page-by-page agreement with the model. */
function checkMap(map: VmMap, model: readonly (PageModel | undefined)[]): void {
  const entries = [...map.entries()];
  let previousEnd = map.minAddress;
  let total = 0;
  const pages: (PageModel | undefined)[] = Array.from({ length: PAGES }, () => undefined);
  for (const entry of entries) {
    expect(entry.start % PS).toBe(0);
    expect(entry.end % PS).toBe(0);
    expect(entry.offset % PS).toBe(0);
    expect(entry.start).toBeGreaterThanOrEqual(previousEnd);
    expect(entry.end).toBeGreaterThan(entry.start);
    expect(entry.end).toBeLessThanOrEqual(map.maxAddress);
    expect(entry.offset + (entry.end - entry.start)).toBeLessThanOrEqual(entry.object.size);
    previousEnd = entry.end;
    total += entry.end - entry.start;
    for (let address = entry.start; address < entry.end; address += PS) {
      pages[address / PS] = {
        object: entry.object.slot, offset: entry.offset + (address - entry.start),
        protection: entry.protection, maxProtection: entry.maxProtection, inheritance: entry.inheritance,
      };
    }
  }
  expect(map.virtualSize).toBe(total);
  expect(map.regionCount).toBe(entries.length);
  expect(pages).toEqual(model);
}

describe('VmMap property', () => {
  it('random vm_allocate / vm_deallocate / vm_protect / vm_inherit keep the map sorted, disjoint, page aligned and sized, matching a page model; rejected calls change nothing', () => {
    fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 40 }), (ops) => {
      const map = new VmMap(PS, PAGES * PS);
      const { create, made } = fakeFactory();
      const model: (PageModel | undefined)[] = Array.from({ length: PAGES }, () => undefined);
      for (const op of ops) {
        const before = stateOf(map);
        const objectsBefore = new Set(model.flatMap((page) => page === undefined ? [] : [page.object]));
        const expected = applyToModel(model, op, made.length);
        const result = applyToMap(map, op, create);
        expect(result.kr).toBe(expected.kr);
        if (op.call === 'allocate') expect(result.address).toBe(expected.address);
        if (result.kr !== KERN_SUCCESS) expect(stateOf(map)).toEqual(before);
        if (op.call === 'deallocate') {
          const objectsAfter = new Set(model.flatMap((page) => page === undefined ? [] : [page.object]));
          const gone = [...objectsBefore].filter((object) => !objectsAfter.has(object)).sort((a, b) => a - b);
          expect(result.unmapped!.map((object) => object.slot).sort((a, b) => a - b)).toEqual(gone);
        }
        checkMap(map, model);
      }
    }), { numRuns: 200 });
  });
});
