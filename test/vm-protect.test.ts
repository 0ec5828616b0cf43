/** vm_protect through real nodes: current and maximum protection, splitting, every return code. */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_PROTECTION_FAILURE, KERN_SUCCESS, VM_PROT_ALL,
  VM_PROT_DEFAULT, VM_PROT_EXECUTE, VM_PROT_NONE, VM_PROT_READ, VM_PROT_WRITE,
} from 'norma-rt';
import { bootKernel, snapshot } from './helpers.js';

const BASE = 0x100000;

describe('vm_protect', () => {
  it('vm_protect sets the current protection, keeps the maximum, and the new protection is enforced', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    await task.write(BASE, Uint8Array.of(9));
    await task.protect(BASE, 4096, VM_PROT_READ);
    expect(await task.region(BASE)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_ALL });
    let before = await snapshot(task);
    await expect(task.write(BASE, Uint8Array.of(1))).rejects.toMatchObject({ code: 'KERN_PROTECTION_FAILURE', kr: 2 });
    expect(await snapshot(task)).toEqual(before);
    expect(await task.read(BASE, 1)).toEqual(Uint8Array.of(9));
    expect(await kernel.mach.vm_protect(task, BASE + 4096, 4096, false, VM_PROT_NONE)).toBe(KERN_SUCCESS);
    expect(await kernel.mach.vm_region(task, BASE + 4096)).toMatchObject({ kr: KERN_SUCCESS, protection: VM_PROT_NONE, max_protection: VM_PROT_ALL });
    before = await snapshot(task);
    await expect(task.read(BASE + 4096, 1)).rejects.toMatchObject({ code: 'KERN_PROTECTION_FAILURE', kr: 2 });
    expect(await snapshot(task)).toEqual(before);
    // The current protection can be raised again up to the maximum.
    await task.protect(BASE, 2 * 4096, VM_PROT_ALL);
    await task.write(BASE + 4096, Uint8Array.of(7));
    expect(await task.read(BASE + 4096, 1)).toEqual(Uint8Array.of(7));
  });

  it('vm_protect with set_maximum lowers the maximum and lowers the current protection to fit it', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    await task.protect(BASE, 4096, VM_PROT_READ | VM_PROT_EXECUTE, { setMaximum: true });
    expect(await task.region(BASE)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_READ | VM_PROT_EXECUTE });
    expect(await kernel.mach.vm_protect(task, BASE + 4096, 4096, true, VM_PROT_EXECUTE)).toBe(KERN_SUCCESS);
    expect(await kernel.mach.vm_region(task, BASE + 4096)).toMatchObject({
      kr: KERN_SUCCESS, address: BASE + 4096, size: 4096, protection: VM_PROT_NONE, max_protection: VM_PROT_EXECUTE,
    });
    // Lowering the maximum above the current protection leaves the current one alone.
    await task.protect(BASE, 4096, VM_PROT_EXECUTE);
    await task.protect(BASE, 4096, VM_PROT_EXECUTE, { setMaximum: true });
    expect(await task.region(BASE)).toMatchObject({ protection: VM_PROT_EXECUTE, maxProtection: VM_PROT_EXECUTE });
  });

  it('vm_protect returns KERN_PROTECTION_FAILURE for a current protection above the maximum and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    await task.protect(BASE + 4096, 4096, VM_PROT_READ, { setMaximum: true });
    const before = await snapshot(task);
    for (const [address, size] of [[BASE + 4096, 4096], [BASE, 2 * 4096], [BASE + 4095, 2]] as const) {
      await expect(task.protect(address, size, VM_PROT_DEFAULT)).rejects.toMatchObject({ code: 'KERN_PROTECTION_FAILURE', kr: 2 });
      expect(await kernel.mach.vm_protect(task, address, size, false, VM_PROT_WRITE)).toBe(KERN_PROTECTION_FAILURE);
    }
    // Nothing was changed in the first page either, though it alone would have allowed it.
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_protect returns KERN_PROTECTION_FAILURE when asked to raise the maximum and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    await task.protect(BASE, 4096, VM_PROT_READ, { setMaximum: true });
    const before = await snapshot(task);
    await expect(task.protect(BASE, 4096, VM_PROT_ALL, { setMaximum: true })).rejects.toMatchObject({ code: 'KERN_PROTECTION_FAILURE', kr: 2 });
    expect(await kernel.mach.vm_protect(task, BASE, 4096, true, VM_PROT_READ | VM_PROT_WRITE)).toBe(KERN_PROTECTION_FAILURE);
    expect(await kernel.mach.vm_protect(task, BASE, 4096, true, VM_PROT_EXECUTE)).toBe(KERN_PROTECTION_FAILURE);
    expect(await snapshot(task)).toEqual(before);
    expect(await task.region(BASE)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_READ });
  });

  it('vm_protect returns KERN_INVALID_ARGUMENT for protections 8, -1 and 1.5 and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    for (const protection of [8, -1, 1.5, 0x10, Number.NaN, 'r' as never]) {
      for (const setMaximum of [false, true]) {
        await expect(task.protect(BASE, 4096, protection, { setMaximum })).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
        expect(await kernel.mach.vm_protect(task, BASE, 4096, setMaximum, protection)).toBe(KERN_INVALID_ARGUMENT);
      }
    }
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_protect returns KERN_INVALID_ADDRESS for a range with an unallocated page and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    await task.allocate(4096, { address: BASE + 2 * 4096 });
    const before = await snapshot(task);
    for (const [address, size] of [[BASE, 3 * 4096], [BASE + 4096, 1], [BASE - 1, 2], [BASE + 0x100000, 4096], [-1, 4096]] as const) {
      await expect(task.protect(address, size, VM_PROT_READ)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
      expect(await kernel.mach.vm_protect(task, address, size, true, VM_PROT_READ)).toBe(KERN_INVALID_ADDRESS);
    }
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_protect of part of a region splits it and vm_region shows the split', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(3 * 4096, { address: BASE });
    await task.write(BASE, Uint8Array.from({ length: 3 * 4096 }, (_, index) => index & 0xff));
    expect(await kernel.mach.vm_protect(task, BASE + 4096, 4096, false, VM_PROT_READ)).toBe(KERN_SUCCESS);
    expect(await kernel.mach.vm_region(task, BASE + 10)).toMatchObject({ kr: KERN_SUCCESS, address: BASE, size: 4096, protection: VM_PROT_DEFAULT, offset: 0 });
    expect(await kernel.mach.vm_region(task, BASE + 4096 + 10)).toMatchObject({ kr: KERN_SUCCESS, address: BASE + 4096, size: 4096, protection: VM_PROT_READ, offset: 4096 });
    expect(await kernel.mach.vm_region(task, BASE + 2 * 4096 + 10)).toMatchObject({ kr: KERN_SUCCESS, address: BASE + 2 * 4096, size: 4096, protection: VM_PROT_DEFAULT, offset: 2 * 4096 });
    const regions = await task.regions();
    expect(regions).toHaveLength(3);
    expect(new Set(regions.map((region) => region.object)).size).toBe(1);
    expect(await task.read(BASE, 3 * 4096)).toEqual(Uint8Array.from({ length: 3 * 4096 }, (_, index) => index & 0xff));
    expect(await task.info()).toMatchObject({ regionCount: 3, virtualSize: 3 * 4096 });
  });

  it.each([4096, 16384])('vm_protect of (address + 100, 1) changes exactly one page and (address + pageSize - 1, 2) exactly two (page size %i)', async (pageSize) => {
    // 4096 is the default page size: boot without the option to use it.
    const kernel = await bootKernel(pageSize === 4096 ? { nodes: 1 } : { nodes: 1, pageSize });
    expect(kernel.pageSize).toBe(pageSize);
    const task = kernel.bootstrapTask;
    await task.allocate(6 * pageSize, { address: BASE });
    await task.protect(BASE + 100, 1, VM_PROT_READ);
    expect(await kernel.mach.vm_protect(task, BASE + 3 * pageSize - 1, 2, true, VM_PROT_NONE)).toBe(KERN_SUCCESS);
    expect((await task.regions()).map(({ address, size, protection, maxProtection }) => [address, size, protection, maxProtection])).toEqual([
      [BASE, pageSize, VM_PROT_READ, VM_PROT_ALL],
      [BASE + pageSize, pageSize, VM_PROT_DEFAULT, VM_PROT_ALL],
      [BASE + 2 * pageSize, 2 * pageSize, VM_PROT_NONE, VM_PROT_NONE],
      [BASE + 4 * pageSize, 2 * pageSize, VM_PROT_DEFAULT, VM_PROT_ALL],
    ]);
  });

  it('vm_protect of size 0 returns KERN_SUCCESS and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    await task.protect(BASE + 100, 0, VM_PROT_NONE);
    expect(await kernel.mach.vm_protect(task, BASE, 0, true, VM_PROT_NONE)).toBe(KERN_SUCCESS);
    expect(await snapshot(task)).toEqual(before);
  });
});
