/**
 * norma_task_create (MACH.md §4): task_create on a chosen node. Each parent region is shared,
 * copied or left out by its inheritance, across nodes as on one; child_node equal to the
 * parent's node acts as task_create; a node that is not an integer in [0, nodes) is
 * KERN_INVALID_ARGUMENT and creates nothing.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS,
  VM_INHERIT_COPY, VM_INHERIT_SHARE, type Task,
} from 'norma-rt';
import { bootKernel, byteAt, expectSplitRegionPassedPieceByPiece, fixture, itInOneProcess, normaFaces, snapshot, threeRegionParent, rejectsWith } from './helpers.js';

/** Atomics.waitAsync: in Node 20, but not in the ES2023 lib this project compiles against. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: boolean; value: Promise<string> | string };
}).waitAsync;

const faces = normaFaces('norma_task_create');

describe.each(faces)('norma_task_create through %s', (_face, createOn) => {
  it('creates the child on child_node with no threads, sharing a VM_INHERIT_SHARE region both ways', async () => {
    const kernel = await bootKernel();
    const { parent, share } = await threeRegionParent(kernel);
    const child = await createOn(kernel, parent, true, 1);

    expect(child.node).toBe(1);
    expect(await child.info()).toMatchObject({ node: 1, threadCount: 0, suspendCount: 0 });
    expect((await child.region(share)).object).toBe((await parent.region(share)).object);
    expect((await child.region(share)).shared).toBe(true);

    await parent.write(share, Uint8Array.of(0xa1));
    expect(await byteAt(child, share)).toBe(0xa1);
    await child.write(share + 1, Uint8Array.of(0xb2));
    expect(await byteAt(parent, share + 1)).toBe(0xb2);
  });

  it('gives a VM_INHERIT_COPY region a private copy taken at creation that later writes on either node do not reach', async () => {
    const kernel = await bootKernel();
    const { parent, page, copy } = await threeRegionParent(kernel);
    const child = await createOn(kernel, parent, true, 1);

    expect(await child.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
    expect((await child.region(copy)).object).not.toBe((await parent.region(copy)).object);
    await parent.write(copy, Uint8Array.of(0xa1));
    expect(await byteAt(child, copy)).toBe(0x22);
    await child.write(copy + 1, Uint8Array.of(0xb2));
    expect(await byteAt(parent, copy + 1)).toBe(0x22);
  });

  it('leaves a VM_INHERIT_NONE region out and keeps the parent inheritance values on the child regions', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy, none } = await threeRegionParent(kernel);
    const child = await createOn(kernel, parent, true, 1);

    expect((await child.regions()).map(({ address, size, inheritance }) => ({ address, size, inheritance }))).toEqual([
      { address: share, size: page, inheritance: VM_INHERIT_SHARE },
      { address: copy, size: page, inheritance: VM_INHERIT_COPY },
    ]);
    await rejectsWith(child.read(none, 1), KERN_INVALID_ADDRESS);
  });

  it('with inherit_memory false gives the remote child an empty address space', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const child = await createOn(kernel, parent, false, 1);

    expect(child.node).toBe(1);
    expect(await child.regions()).toEqual([]);
    expect(await child.info()).toMatchObject({ regionCount: 0, virtualSize: 0 });
    expect(await snapshot(parent)).toEqual(before);
  });

  it('with child_node equal to the parent node acts as task_create', async () => {
    const kernel = await bootKernel();
    const { parent, share, copy } = await threeRegionParent(kernel);
    const local = await createOn(kernel, parent, true, 0);
    const reference = await parent.create();

    expect(local.node).toBe(0);
    const strip = (task: Task) => task.regions().then((regions) =>
      regions.map(({ address, size, protection, maxProtection, inheritance }) =>
        ({ address, size, protection, maxProtection, inheritance })));
    expect(await strip(local)).toEqual(await strip(reference));
    expect((await local.region(share)).object).toBe((await parent.region(share)).object);
    expect((await local.region(copy)).object).not.toBe((await parent.region(copy)).object);
  });
});

describe('norma_task_create', () => {
  it('returns KERN_INVALID_ARGUMENT for a child_node that is not an integer in [0, nodes) and creates nothing', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    for (const node of [2, -1, 1.5, '1', NaN, Infinity, null, undefined]) {
      expect(await kernel.mach.norma_task_create(parent, true, node as never)).toEqual({ kr: KERN_INVALID_ARGUMENT });
      await rejectsWith(parent.createOn(node as never), KERN_INVALID_ARGUMENT);
    }
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await snapshot(parent)).toEqual(before);
    expect((await parent.regions()).every((region) => !region.shared)).toBe(true);
  });

  it('returns KERN_INVALID_ARGUMENT for a parent that is not a live task, through both faces', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    await parent.terminate();
    const pagers = await kernel.pagerInfo();

    expect(await kernel.mach.norma_task_create(parent, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await kernel.mach.norma_task_create({} as never, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await rejectsWith(parent.createOn(1), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('builds a child back on node 0 from a parent on node 1, sharing and copying as from node 0', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy, none } = await threeRegionParent(kernel, 1);
    const child = await parent.createOn(0);

    expect(child.node).toBe(0);
    expect((await child.regions()).map((region) => region.address)).toEqual([share, copy]);
    await child.write(share, Uint8Array.of(0xc3));
    expect(await byteAt(parent, share)).toBe(0xc3);
    await parent.write(copy, Uint8Array.of(0xd4));
    expect(await child.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
    await rejectsWith(child.read(none, 1), KERN_INVALID_ADDRESS);
  });

  it('passes a region split by vm_inherit piece by piece: COPY pieces copied, the SHARE piece mapped at its offset in the same object', async () => {
    await expectSplitRegionPassedPieceByPiece(await bootKernel(), (parent) => parent.createOn(1));
  });

  itInOneProcess('a ledger is a SharedArrayBuffer of one process: a child in another counts against its own process')('gives the remote child the parent security token and ledgers', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(4 * page)];
    const parent = await kernel.bootstrapTask.create({ ledgers: [wired, paged] });
    await parent.setSecurityToken([3, 4]);
    await parent.allocate(page);

    const child = await parent.createOn(1);
    expect(await child.info()).toMatchObject({ node: 1, securityToken: [3, 4] });
    // The COPY region's private copy (made at creation) is charged to the parent's paged ledger.
    expect(paged.balance).toBe(2 * page);
    await child.allocate(2 * page);
    expect(paged.balance).toBe(4 * page);

    const before = await snapshot(child);
    const pagers = await kernel.pagerInfo();
    await rejectsWith(child.allocate(page), KERN_RESOURCE_SHORTAGE);
    expect(await snapshot(child)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('returns KERN_RESOURCE_SHORTAGE when the COPY regions exceed the parent paged ledger and creates nothing', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(5 * page)];
    const parent = await kernel.bootstrapTask.create({ ledgers: [wired, paged] });
    await parent.allocate(3 * page);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    expect(await kernel.mach.norma_task_create(parent, true, 1)).toEqual({ kr: KERN_RESOURCE_SHORTAGE });
    await rejectsWith(parent.createOn(1), KERN_RESOURCE_SHORTAGE);
    expect(paged.balance).toBe(3 * page);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await snapshot(parent)).toEqual(before);
    // Without the copies it fits: inherit_memory false needs no memory.
    expect((await kernel.mach.norma_task_create(parent, false, 1)).kr).toBe(KERN_SUCCESS);
  });

  // The parent's node sends the image straight to the child's node; when that node dies first,
  // the parent's node drops the image's references itself.
  it('norma_task_create failing with KERN_NODE_DOWN after the capture leaves no memory charged once the parent ends', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(Infinity)];
    const parent = await kernel.bootstrapTask.create({ ledgers: [wired, paged] });
    const gate = await parent.allocate(page);
    await parent.inherit(gate, page, VM_INHERIT_SHARE);
    await parent.allocate(2 * page);
    const view = await parent.view(gate, 8);
    const words = new Int32Array(view.buffer, view.byteOffset, 2);

    // Hold node 0 so the fork is queued behind the gate, then take node 1 down before it runs.
    const held = parent.execute(fixture('gate.mjs'), 'hold', gate);
    const entered = waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    const forked = parent.createOn(1).catch((error: unknown) => error);
    await kernel.crashNode(1);
    expect(await forked).toMatchObject({ code: 'KERN_NODE_DOWN', kr: KERN_NODE_DOWN });
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    expect(await held).toEqual({ node: 0 });

    // Node 0 has now captured the image for the dead node; the parent is the last task mapping anything.
    await parent.terminate();
    expect(paged.balance).toBe(0);
  });
});
