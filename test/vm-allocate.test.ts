/** vm_allocate through real nodes: both faces, every return code, the seed's page rounding. */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_NO_SPACE, KERN_SUCCESS, VM_INHERIT_COPY,
  VM_PROT_ALL, VM_PROT_DEFAULT,
} from 'norma-rt';
import { bootKernel, snapshot } from './helpers.js';

const BASE = 0x100000;

describe('vm_allocate', () => {
  it('vm_allocate anywhere returns KERN_SUCCESS with page-aligned, non-overlapping, zero-filled memory with VM_PROT_DEFAULT, max VM_PROT_ALL and VM_INHERIT_COPY', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    const first = await task.allocate(3 * 4096);
    const reply = await kernel.mach.vm_allocate(task, 0, 100, true);
    expect(reply.kr).toBe(KERN_SUCCESS);
    const second = reply.address;
    for (const address of [first, second]) {
      expect(address % 4096).toBe(0);
      expect(address).toBeGreaterThanOrEqual(4096);
    }
    expect(second >= first + 3 * 4096 || second + 4096 <= first).toBe(true);
    expect(await kernel.mach.vm_region(task, first)).toEqual({
      kr: KERN_SUCCESS, address: first, size: 3 * 4096, protection: VM_PROT_DEFAULT, max_protection: VM_PROT_ALL,
      inheritance: VM_INHERIT_COPY, shared: false, offset: 0,
    });
    expect(await task.region(second)).toMatchObject({
      address: second, size: 4096, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL,
      inheritance: VM_INHERIT_COPY, shared: false, offset: 0,
    });
    expect(await task.read(first, 3 * 4096)).toEqual(new Uint8Array(3 * 4096));
    expect((await kernel.mach.vm_read(task, second, 4096)).data).toEqual(new Uint8Array(4096));
    expect(await task.info()).toMatchObject({ regionCount: 2, virtualSize: 4 * 4096 });
  });

  it('vm_allocate anywhere never overlaps earlier allocations, whatever their sizes', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    const sizes = [1, 4096, 4097, 10_000, 3 * 4096, 5];
    const ranges = await Promise.all(sizes.map(async (size) => {
      const address = await task.allocate(size);
      return [address, address + Math.ceil(size / 4096) * 4096] as const;
    }));
    const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
    for (let index = 1; index < sorted.length; index++) expect(sorted[index]![0]).toBeGreaterThanOrEqual(sorted[index - 1]![1]);
    expect((await task.regions()).map((region) => [region.address, region.address + region.size])).toEqual(sorted);
  });

  it.each([4096, 16384])('vm_allocate rounds the size up to whole pages and a fixed address down to its page (page size %i)', async (pageSize) => {
    // 4096 is the default page size: boot without the option to use it.
    const kernel = await bootKernel(pageSize === 4096 ? { nodes: 1 } : { nodes: 1, pageSize });
    expect(kernel.pageSize).toBe(pageSize);
    const task = kernel.bootstrapTask;
    const anywhere = await task.allocate(pageSize + 1);
    expect(await task.region(anywhere)).toMatchObject({ address: anywhere, size: 2 * pageSize });
    // (BASE + 100, 1): exactly the page holding BASE + 100.
    expect(await task.allocate(1, { address: BASE + 100 })).toBe(BASE);
    expect(await task.region(BASE)).toMatchObject({ address: BASE, size: pageSize });
    // (start + pageSize - 1, 2): the two pages holding its first and last byte.
    const start = BASE + 2 * pageSize;
    expect(await kernel.mach.vm_allocate(task, start + pageSize - 1, 2, false)).toEqual({ kr: KERN_SUCCESS, address: start });
    expect(await task.region(start)).toMatchObject({ address: start, size: 2 * pageSize });
    expect((await task.regions()).filter((region) => region.address >= BASE).map((region) => [region.address, region.size]))
      .toEqual([[BASE, pageSize], [start, 2 * pageSize]]);
  });

  it('vm_allocate at a fixed address maps exactly that page, zero filled, with the default attributes', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    expect(await kernel.mach.vm_allocate(task, BASE, 8192, false)).toEqual({ kr: KERN_SUCCESS, address: BASE });
    expect(await task.regions()).toEqual([expect.objectContaining({
      address: BASE, size: 8192, protection: VM_PROT_DEFAULT, maxProtection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY,
    })]);
    expect(await task.read(BASE, 8192)).toEqual(new Uint8Array(8192));
  });

  it('vm_allocate at a fixed address returns KERN_NO_SPACE on any overlap and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    await task.write(BASE + 10, Uint8Array.of(1, 2, 3));
    const before = await snapshot(task);
    const pagers = await kernel.pagerInfo();
    const overlaps = [
      [BASE - 4096, 2 * 4096], [BASE + 4096, 1], [BASE + 2 * 4096 - 1, 2], [BASE - 4096, 8 * 4096], [BASE + 100, 1],
    ] as const;
    for (const [address, size] of overlaps) {
      await expect(task.allocate(size, { address })).rejects.toMatchObject({ code: 'KERN_NO_SPACE', kr: 3 });
      expect(await kernel.mach.vm_allocate(task, address, size, false)).toEqual({ kr: KERN_NO_SPACE, address: 0 });
    }
    expect(await snapshot(task)).toEqual(before);
    // No memory object was made (or leaked) for a rejected call.
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('vm_allocate at a fixed address returns KERN_INVALID_ADDRESS in page 0, beyond 2**47 or for a malformed address, and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    const pagers = await kernel.pagerInfo();
    const illegal = [[0, 4096], [100, 1], [4095, 2], [2 ** 47, 4096], [2 ** 47 - 4096, 2 * 4096], [-4096, 4096], [1.5, 4096]] as const;
    for (const [address, size] of illegal) {
      await expect(task.allocate(size, { address })).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
      expect(await kernel.mach.vm_allocate(task, address, size, false)).toEqual({ kr: KERN_INVALID_ADDRESS, address: 0 });
    }
    expect(await snapshot(task)).toEqual(before);
    // No memory object was made (or leaked) for a rejected call.
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('vm_allocate at a fixed address accepts the first page above page 0 and the last page below 2**47', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    expect(await task.allocate(4096, { address: 4096 })).toBe(4096);
    expect(await kernel.mach.vm_allocate(task, 2 ** 47 - 1, 1, false)).toEqual({ kr: KERN_SUCCESS, address: 2 ** 47 - 4096 });
    expect((await task.regions()).map((region) => [region.address, region.size])).toEqual([[4096, 4096], [2 ** 47 - 4096, 4096]]);
  });

  it('vm_allocate of size 0 returns KERN_SUCCESS and address 0 and maps nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    expect(await task.allocate(0)).toBe(0);
    expect(await task.allocate(0, { address: BASE })).toBe(0);
    expect(await kernel.mach.vm_allocate(task, 0, 0, true)).toEqual({ kr: KERN_SUCCESS, address: 0 });
    expect(await kernel.mach.vm_allocate(task, BASE, 0, false)).toEqual({ kr: KERN_SUCCESS, address: 0 });
    expect(await task.regions()).toEqual([]);
    expect(await task.info()).toMatchObject({ regionCount: 0, virtualSize: 0 });
  });

  it('vm_allocate returns KERN_INVALID_ARGUMENT for a malformed size and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    const pagers = await kernel.pagerInfo();
    for (const size of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, '4096' as never, null as never]) {
      await expect(task.allocate(size)).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
      await expect(task.allocate(size, { address: BASE + 4096 })).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
      expect(await kernel.mach.vm_allocate(task, 0, size, true)).toEqual({ kr: KERN_INVALID_ARGUMENT, address: 0 });
      expect(await kernel.mach.vm_allocate(task, BASE + 4096, size, false)).toEqual({ kr: KERN_INVALID_ARGUMENT, address: 0 });
    }
    expect(await snapshot(task)).toEqual(before);
    // No memory object was made (or leaked) for a rejected call.
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('vm_allocate anywhere returns KERN_NO_SPACE for more than the address space holds and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    const pagers = await kernel.pagerInfo();
    await expect(task.allocate(2 ** 47)).rejects.toMatchObject({ code: 'KERN_NO_SPACE', kr: 3 });
    expect(await kernel.mach.vm_allocate(task, 0, 2 ** 47, true)).toEqual({ kr: KERN_NO_SPACE, address: 0 });
    expect(await snapshot(task)).toEqual(before);
    // No memory object was made (or leaked) for a rejected call.
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('vm_allocate anywhere on a second node gives that node\'s task zero-filled memory of its own', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const remote = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    expect(remote.node).toBe(1);
    const address = await remote.allocate(4096);
    expect((await kernel.mach.vm_read(remote, address, 4096)).data).toEqual(new Uint8Array(4096));
    expect(await kernel.bootstrapTask.regions()).toEqual([]);
    expect((await kernel.pagerInfo())[1]).toMatchObject({ objects: 1, bytes: 4096 });
  });
});
