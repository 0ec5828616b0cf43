/**
 * norma_task_clone (seed 000): a child on child_node that shares every parent region whatever
 * its inheritance, while its own regions keep the parent's inheritance values. Per the project
 * (not OSF, which refuses it), a clone onto the parent's own node works.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, VM_INHERIT_COPY, VM_INHERIT_NONE,
  VM_INHERIT_SHARE, } from 'norma-rt';
import { bootKernel, byteAt, fixture, itInOneProcess, normaFaces, snapshot, threeRegionParent, rejectsWith } from './helpers.js';

function word(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
}

const faces = normaFaces('norma_task_clone');

describe.each(faces)('norma_task_clone through %s', (_face, clone) => {
  it('shares every region whatever its inheritance, COPY and NONE included, writes visible both ways', async () => {
    const kernel = await bootKernel();
    const { parent, share, copy, none } = await threeRegionParent(kernel);
    const child = await clone(kernel, parent, true, 1);

    expect(child.node).toBe(1);
    expect(await child.info()).toMatchObject({ node: 1, threadCount: 0, regionCount: 3 });
    const parentRegions = await parent.regions();
    const childRegions = await child.regions();
    expect(childRegions.map((region) => region.object)).toEqual(parentRegions.map((region) => region.object));
    expect(childRegions.every((region) => region.shared)).toBe(true);

    for (const [at, value] of [[share, 0xa1], [copy, 0xa2], [none, 0xa3]] as const) {
      await parent.write(at, Uint8Array.of(value));
      expect(await byteAt(child, at)).toBe(value);
      await child.write(at + 1, Uint8Array.of(value + 1));
      expect(await byteAt(parent, at + 1)).toBe(value + 1);
    }
  });

  it('keeps the parent inheritance values on the clone regions', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy, none } = await threeRegionParent(kernel);
    const child = await clone(kernel, parent, true, 1);

    expect((await child.regions()).map(({ address, size, inheritance }) => ({ address, size, inheritance }))).toEqual([
      { address: share, size: page, inheritance: VM_INHERIT_SHARE },
      { address: copy, size: page, inheritance: VM_INHERIT_COPY },
      { address: none, size: page, inheritance: VM_INHERIT_NONE },
    ]);
  });

  it('onto the parent own node works: a same-node child sharing everything', async () => {
    const kernel = await bootKernel();
    const { parent, none } = await threeRegionParent(kernel);
    const child = await clone(kernel, parent, true, 0);

    expect(child.node).toBe(0);
    expect(child.id).not.toBe(parent.id);
    expect((await child.regions()).map((region) => region.object))
      .toEqual((await parent.regions()).map((region) => region.object));
    await child.write(none, Uint8Array.of(0x5a));
    expect(await byteAt(parent, none)).toBe(0x5a);
  });

  it('with inherit_memory false gives the clone an empty address space and leaves the parent as it was', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();
    const child = await clone(kernel, parent, false, 1);

    expect(await child.regions()).toEqual([]);
    expect(await child.info()).toMatchObject({ node: 1, regionCount: 0, virtualSize: 0 });
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });
});

describe('norma_task_clone', () => {
  itInOneProcess('Atomics need a raw view, refused on memory homed in another process')('lets two nodes Atomics.add one counter in a cloned region concurrently and reach exactly 2N', async () => {
    const kernel = await bootKernel();
    const N = 500_000;
    const parent = await kernel.bootstrapTask.create();
    // vm_allocate's default inheritance is COPY: only clone's "share whatever" makes this shared.
    const counter = await parent.allocate(kernel.pageSize);
    const child = await parent.clone(1);

    const [fromParent, fromClone] = await Promise.all([
      parent.execute(fixture('counter.mjs'), 'bump', counter, N),
      child.execute(fixture('counter.mjs'), 'bump', counter, N),
    ]) as Array<{ node: number; task: number }>;

    expect(fromParent).toEqual({ node: 0, task: parent.id });
    expect(fromClone).toEqual({ node: 1, task: child.id });
    expect(fromParent!.node).not.toBe(fromClone!.node);
    expect(word(await parent.read(counter, 4))).toBe(2 * N);
    expect(word(await child.read(counter, 4))).toBe(2 * N);
    const view = await child.view(counter, 4);
    expect(Atomics.load(new Int32Array(view.buffer, view.byteOffset, 1), 0)).toBe(2 * N);
    expect(await parent.execute(fixture('counter.mjs'), 'readWord', counter)).toBe(2 * N);
  });

  it('differs from task_create and norma_task_create: a COPY region the parent writes after creation changes only in the clone', async () => {
    const kernel = await bootKernel();
    const { parent, page, copy } = await threeRegionParent(kernel);
    const local = await parent.create();
    const remote = await parent.createOn(1);
    const cloned = await parent.clone(1);

    await parent.write(copy, new Uint8Array(page).fill(0x7e));
    expect(await local.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
    expect(await remote.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
    expect(await cloned.read(copy, page)).toEqual(new Uint8Array(page).fill(0x7e));
  });

  it('a task_create from the clone follows the inherited values: SHARE shared, COPY copied, NONE absent', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy, none } = await threeRegionParent(kernel);
    const cloned = await parent.clone(1);
    const grandchild = await cloned.create();

    expect(grandchild.node).toBe(1);
    expect((await grandchild.regions()).map((region) => region.address)).toEqual([share, copy]);
    expect((await grandchild.region(share)).object).toBe((await parent.region(share)).object);
    expect((await grandchild.region(copy)).object).not.toBe((await parent.region(copy)).object);
    await rejectsWith(grandchild.read(none, 1), KERN_INVALID_ADDRESS);

    await parent.write(share, Uint8Array.of(0x66));
    expect(await byteAt(grandchild, share)).toBe(0x66);
    await cloned.write(copy, Uint8Array.of(0x77));
    expect(await grandchild.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
  });

  it('returns KERN_INVALID_ARGUMENT for a child_node that is not an integer in [0, nodes) and creates nothing', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    for (const node of [2, -1, 1.5, '1', NaN, null]) {
      expect(await kernel.mach.norma_task_clone(parent, true, node as never)).toEqual({ kr: KERN_INVALID_ARGUMENT });
      await rejectsWith(parent.clone(node as never), KERN_INVALID_ARGUMENT);
    }
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect((await parent.regions()).every((region) => !region.shared)).toBe(true);
  });

  it('returns KERN_INVALID_ARGUMENT for a terminated parent or a non-boolean inherit_memory, through both faces', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    expect(await kernel.mach.norma_task_clone(parent, 'yes' as never, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await rejectsWith(parent.clone(1, { inheritMemory: 0 as never }), KERN_INVALID_ARGUMENT);
    expect(await snapshot(parent)).toEqual(before);

    await parent.terminate();
    const pagers = await kernel.pagerInfo();
    expect(await kernel.mach.norma_task_clone(parent, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await rejectsWith(parent.clone(1), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });
});
