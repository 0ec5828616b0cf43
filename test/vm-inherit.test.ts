/** vm_inherit through real nodes: the seed's rounding, splitting, what children get, every return code. */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_DONATE_COPY,
  VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from 'norma-rt';
import { bootKernel, snapshot } from './helpers.js';

const BASE = 0x100000;

describe('vm_inherit', () => {
  it('vm_inherit sets VM_INHERIT_SHARE, VM_INHERIT_COPY and VM_INHERIT_NONE and vm_region reports each', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    for (const inheritance of [VM_INHERIT_SHARE, VM_INHERIT_NONE, VM_INHERIT_COPY]) {
      await task.inherit(BASE, 4096, inheritance);
      expect(await task.region(BASE)).toMatchObject({ address: BASE, size: 4096, inheritance });
    }
    for (const inheritance of [VM_INHERIT_NONE, VM_INHERIT_SHARE, VM_INHERIT_COPY]) {
      expect(await kernel.mach.vm_inherit(task, BASE, 4096, inheritance)).toBe(KERN_SUCCESS);
      expect(await kernel.mach.vm_region(task, BASE)).toMatchObject({ kr: KERN_SUCCESS, address: BASE, size: 4096, inheritance });
    }
  });

  it.each([4096, 16384])('vm_inherit of (address + 100, 1) affects exactly one page and (address + pageSize - 1, 2) exactly two (page size %i)', async (pageSize) => {
    // 4096 is the default page size: boot without the option to use it.
    const kernel = await bootKernel(pageSize === 4096 ? { nodes: 1 } : { nodes: 1, pageSize });
    expect(kernel.pageSize).toBe(pageSize);
    const task = kernel.bootstrapTask;
    await task.allocate(6 * pageSize, { address: BASE });
    await task.inherit(BASE + 100, 1, VM_INHERIT_SHARE);
    expect(await kernel.mach.vm_inherit(task, BASE + 3 * pageSize - 1, 2, VM_INHERIT_NONE)).toBe(KERN_SUCCESS);
    expect((await task.regions()).map(({ address, size, inheritance }) => [address, size, inheritance])).toEqual([
      [BASE, pageSize, VM_INHERIT_SHARE],
      [BASE + pageSize, pageSize, VM_INHERIT_COPY],
      [BASE + 2 * pageSize, 2 * pageSize, VM_INHERIT_NONE],
      [BASE + 4 * pageSize, 2 * pageSize, VM_INHERIT_COPY],
    ]);
    expect((await task.regions()).map((region) => region.offset)).toEqual([0, pageSize, 2 * pageSize, 4 * pageSize]);
  });

  it('vm_inherit of parts of one region splits it, and a child created later shares, copies or lacks each part', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(3 * 4096, { address: BASE });
    await parent.write(BASE, Uint8Array.of(1));
    await parent.write(BASE + 4096, Uint8Array.of(2));
    await parent.write(BASE + 2 * 4096, Uint8Array.of(3));
    await parent.inherit(BASE, 4096, VM_INHERIT_SHARE);
    expect(await kernel.mach.vm_inherit(parent, BASE + 2 * 4096, 4096, VM_INHERIT_NONE)).toBe(KERN_SUCCESS);
    const child = await parent.create();
    // The child keeps the parent's inheritance values on what it got.
    expect((await child.regions()).map(({ address, size, inheritance }) => [address, size, inheritance])).toEqual([
      [BASE, 4096, VM_INHERIT_SHARE], [BASE + 4096, 4096, VM_INHERIT_COPY],
    ]);
    expect(await child.read(BASE, 1)).toEqual(Uint8Array.of(1));
    expect(await child.read(BASE + 4096, 1)).toEqual(Uint8Array.of(2));
    const childBefore = await snapshot(child);
    await expect(child.read(BASE + 2 * 4096, 1)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
    expect(await snapshot(child)).toEqual(childBefore);
    // SHARE: writes go both ways.
    await child.write(BASE, Uint8Array.of(10));
    expect(await parent.read(BASE, 1)).toEqual(Uint8Array.of(10));
    await parent.write(BASE + 1, Uint8Array.of(11));
    expect(await child.read(BASE, 2)).toEqual(Uint8Array.of(10, 11));
    // COPY: the child's copy is its own, and so is the parent's original.
    await child.write(BASE + 4096, Uint8Array.of(20));
    await parent.write(BASE + 4096 + 1, Uint8Array.of(21));
    expect(await parent.read(BASE + 4096, 2)).toEqual(Uint8Array.of(2, 21));
    expect(await child.read(BASE + 4096, 2)).toEqual(Uint8Array.of(20, 0));
  });

  it('vm_inherit VM_INHERIT_SHARE lets a child on another node share the memory', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(4096, { address: BASE });
    await parent.inherit(BASE, 4096, VM_INHERIT_SHARE);
    const child = await parent.createOn(1);
    expect(child.node).toBe(1);
    await child.write(BASE + 100, Uint8Array.of(42));
    expect(await parent.read(BASE + 100, 1)).toEqual(Uint8Array.of(42));
    const view = await parent.view(BASE, 4096);
    view[200] = 43;
    expect(await child.read(BASE + 200, 1)).toEqual(Uint8Array.of(43));
  });

  it('vm_inherit returns KERN_INVALID_ARGUMENT for VM_INHERIT_DONATE_COPY and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    const before = await snapshot(task);
    await expect(task.inherit(BASE, 4096, VM_INHERIT_DONATE_COPY)).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
    expect(await kernel.mach.vm_inherit(task, BASE, 4096, VM_INHERIT_DONATE_COPY)).toBe(KERN_INVALID_ARGUMENT);
    expect(VM_INHERIT_DONATE_COPY).toBe(3);
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_inherit returns KERN_INVALID_ARGUMENT for -1, 7 and \'x\' and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(2 * 4096, { address: BASE });
    const before = await snapshot(task);
    for (const inheritance of [-1, 7, 'x' as never, 0.5, null as never]) {
      await expect(task.inherit(BASE, 4096, inheritance)).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
      expect(await kernel.mach.vm_inherit(task, BASE, 4096, inheritance)).toBe(KERN_INVALID_ARGUMENT);
      // A bad value is refused before the range is looked at.
      expect(await kernel.mach.vm_inherit(task, BASE + 0x100000, 4096, inheritance)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_inherit returns KERN_INVALID_ADDRESS for a range with a hole and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    await task.allocate(4096, { address: BASE + 2 * 4096 });
    const before = await snapshot(task);
    const holes = [[BASE, 3 * 4096], [BASE + 4096, 1], [BASE - 1, 2], [BASE + 4096 - 1, 2], [BASE + 0x100000, 4096], [-1, 1], [2 ** 47, 1]] as const;
    for (const [address, size] of holes) {
      await expect(task.inherit(address, size, VM_INHERIT_SHARE)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
      expect(await kernel.mach.vm_inherit(task, address, size, VM_INHERIT_NONE)).toBe(KERN_INVALID_ADDRESS);
    }
    // Neither the allocated page before the hole nor the one after it was changed.
    expect(await snapshot(task)).toEqual(before);
    expect((await task.regions()).map((region) => region.inheritance)).toEqual([VM_INHERIT_COPY, VM_INHERIT_COPY]);
  });

  it('vm_inherit returns KERN_INVALID_ARGUMENT for a malformed size and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    const before = await snapshot(task);
    for (const size of [-1, 1.5, Number.NaN]) {
      await expect(task.inherit(BASE, size, VM_INHERIT_SHARE)).rejects.toMatchObject({ code: 'KERN_INVALID_ARGUMENT', kr: 4 });
      expect(await kernel.mach.vm_inherit(task, BASE, size, VM_INHERIT_SHARE)).toBe(KERN_INVALID_ARGUMENT);
    }
    expect(await snapshot(task)).toEqual(before);
  });
});
