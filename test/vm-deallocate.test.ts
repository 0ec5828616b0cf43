/**
 * vm_deallocate through real nodes: whole and partial ranges, holes (no error: Mach removes what
 * is mapped, as xnu, GNU Mach and OSF's vm_map_remove do), and sharing with a child.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_SUCCESS, VM_INHERIT_SHARE,
} from 'norma-rt';
import { bootKernel, snapshot } from './helpers.js';

const BASE = 0x100000;

function pattern(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, index) => (index * 13 + seed) & 0xff);
}

describe('vm_deallocate', () => {
  it('vm_deallocate of a whole allocation returns KERN_SUCCESS, removes the region and frees its memory object; deallocating again succeeds and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    const first = await task.allocate(2 * 4096);
    const second = await task.allocate(4096);
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 2, bytes: 3 * 4096 });
    await task.deallocate(first, 2 * 4096);
    expect(await kernel.mach.vm_deallocate(task, second, 4096)).toBe(KERN_SUCCESS);
    expect(await task.regions()).toEqual([]);
    expect(await task.info()).toMatchObject({ regionCount: 0, virtualSize: 0 });
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 0, bytes: 0 });
    const before = await snapshot(task);
    await expect(task.read(first, 1)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
    expect(await kernel.mach.vm_deallocate(task, second, 4096)).toBe(KERN_SUCCESS);
    await task.deallocate(first, 2 * 4096);
    expect(await snapshot(task)).toEqual(before);
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 0, bytes: 0 });
  });

  it('vm_deallocate of part of a region splits it and the other parts keep their contents', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4 * 4096, { address: BASE });
    const bytes = pattern(4 * 4096);
    await task.write(BASE, bytes);
    expect(await kernel.mach.vm_deallocate(task, BASE + 4096, 4096)).toBe(KERN_SUCCESS);
    expect((await task.regions()).map(({ address, size, offset }) => ({ address, size, offset }))).toEqual([
      { address: BASE, size: 4096, offset: 0 },
      { address: BASE + 2 * 4096, size: 2 * 4096, offset: 2 * 4096 },
    ]);
    expect(await task.read(BASE, 4096)).toEqual(bytes.subarray(0, 4096));
    expect(await task.read(BASE + 2 * 4096, 2 * 4096)).toEqual(bytes.subarray(2 * 4096));
    // The object is still mapped by the remaining pieces.
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 1 });
    await task.deallocate(BASE + 3 * 4096, 4096);
    expect(await task.read(BASE + 2 * 4096, 4096)).toEqual(bytes.subarray(2 * 4096, 3 * 4096));
    expect(await task.info()).toMatchObject({ regionCount: 2, virtualSize: 2 * 4096 });
  });

  it.each([4096, 16384])('vm_deallocate of (address + 100, 1) removes exactly one page and (address + pageSize - 1, 2) exactly two (page size %i)', async (pageSize) => {
    // 4096 is the default page size: boot without the option to use it.
    const kernel = await bootKernel(pageSize === 4096 ? { nodes: 1 } : { nodes: 1, pageSize });
    expect(kernel.pageSize).toBe(pageSize);
    const task = kernel.bootstrapTask;
    await task.allocate(6 * pageSize, { address: BASE });
    await task.deallocate(BASE + 100, 1);
    expect(await kernel.mach.vm_deallocate(task, BASE + 3 * pageSize - 1, 2)).toBe(KERN_SUCCESS);
    expect((await task.regions()).map(({ address, size }) => [address, size])).toEqual([
      [BASE + pageSize, pageSize], [BASE + 4 * pageSize, 2 * pageSize],
    ]);
  });

  it('vm_deallocate over unallocated pages returns KERN_SUCCESS and removes only what is mapped in the range', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    // Pages: A at 0, hole at 1, B at 2-3, hole at 4, C at 5.
    await task.allocate(4096, { address: BASE });
    await task.allocate(2 * 4096, { address: BASE + 2 * 4096 });
    await task.allocate(4096, { address: BASE + 5 * 4096 });
    const b = pattern(2 * 4096, 7);
    await task.write(BASE + 2 * 4096, b);
    const before = await snapshot(task);
    // Nothing mapped in the range: success, nothing changes.
    await task.deallocate(BASE + 4096, 1);
    expect(await kernel.mach.vm_deallocate(task, BASE + 4 * 4096, 4096)).toBe(KERN_SUCCESS);
    expect(await kernel.mach.vm_deallocate(task, BASE + 0x100000, 4096)).toBe(KERN_SUCCESS);
    expect(await snapshot(task)).toEqual(before);
    // A hole then A: A goes.
    expect(await kernel.mach.vm_deallocate(task, BASE - 1, 2)).toBe(KERN_SUCCESS);
    // The hole at 1 and B's first page: B is split and keeps its second page.
    await task.deallocate(BASE + 4096, 2 * 4096);
    const layout = async () => (await task.regions()).map(({ address, size, offset }) => ({ address, size, offset }));
    expect(await layout()).toEqual([
      { address: BASE + 3 * 4096, size: 4096, offset: 4096 },
      { address: BASE + 5 * 4096, size: 4096, offset: 0 },
    ]);
    expect(await task.read(BASE + 3 * 4096, 4096)).toEqual(b.subarray(4096));
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 2 });
    // The same range again: success, nothing changes.
    const after = await snapshot(task);
    expect(await kernel.mach.vm_deallocate(task, BASE + 4096, 2 * 4096)).toBe(KERN_SUCCESS);
    expect(await snapshot(task)).toEqual(after);
    // One range over everything left, holes and all.
    expect(await kernel.mach.vm_deallocate(task, 0, 2 ** 40)).toBe(KERN_SUCCESS);
    expect(await task.regions()).toEqual([]);
    expect(await task.info()).toMatchObject({ regionCount: 0, virtualSize: 0 });
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 0, bytes: 0 });
  });

  it('vm_deallocate returns KERN_INVALID_ADDRESS for a range outside the address space or a malformed address and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    await task.allocate(4096, { address: BASE + 2 * 4096 });
    await task.write(BASE, pattern(4096));
    const before = await snapshot(task);
    const outside = [
      [BASE, 2 ** 47], [2 ** 47 - 4096, 2 * 4096], [2 ** 47, 4096], [-4096, 4096], [1.5, 4096], [Number.NaN, 4096],
    ] as const;
    for (const [address, size] of outside) {
      await expect(task.deallocate(address, size)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
      expect(await kernel.mach.vm_deallocate(task, address, size)).toBe(KERN_INVALID_ADDRESS);
    }
    expect(await snapshot(task)).toEqual(before);
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 2 });
  });

  it('vm_deallocate returns KERN_INVALID_ARGUMENT for a malformed size and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    for (const size of [-1, 1.5, Number.NaN, 2 ** 53, '4096' as never]) {
      await expect(task.deallocate(BASE, size)).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
      expect(await kernel.mach.vm_deallocate(task, BASE, size)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_deallocate of size 0 returns KERN_SUCCESS and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    await task.deallocate(BASE, 0);
    expect(await kernel.mach.vm_deallocate(task, BASE + 100, 0)).toBe(KERN_SUCCESS);
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_deallocate in a child does not affect the parent\'s VM_INHERIT_SHARE mapping', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(2 * 4096, { address: BASE });
    await parent.write(BASE, pattern(2 * 4096));
    await parent.inherit(BASE, 2 * 4096, VM_INHERIT_SHARE);
    const child = await parent.create();
    await child.write(BASE + 5, Uint8Array.of(0xaa, 0xbb));
    expect(await parent.region(BASE)).toMatchObject({ shared: true });
    expect(await kernel.mach.vm_deallocate(child, BASE, 4096)).toBe(KERN_SUCCESS);
    await child.deallocate(BASE + 4096, 4096);
    expect(await child.regions()).toEqual([]);
    const expected = pattern(2 * 4096);
    expected.set([0xaa, 0xbb], 5);
    expect(await parent.read(BASE, 2 * 4096)).toEqual(expected);
    expect(await parent.regions()).toEqual([expect.objectContaining({ address: BASE, size: 2 * 4096, shared: false })]);
    await parent.write(BASE, Uint8Array.of(1));
    expect(await parent.read(BASE, 1)).toEqual(Uint8Array.of(1));
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 1 });
  });

  it('vm_deallocate in the parent leaves a child on another node its shared memory', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(4096, { address: BASE });
    await parent.inherit(BASE, 4096, VM_INHERIT_SHARE);
    const child = await parent.createOn(1);
    await parent.write(BASE, Uint8Array.of(4, 5, 6));
    await parent.deallocate(BASE, 4096);
    expect(await parent.regions()).toEqual([]);
    expect(await child.read(BASE, 3)).toEqual(Uint8Array.of(4, 5, 6));
    expect(await child.region(BASE)).toMatchObject({ shared: false });
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 1 });
    await child.deallocate(BASE, 4096);
    expect((await kernel.pagerInfo())[0]).toMatchObject({ objects: 0, bytes: 0 });
  });
});
