/**
 * task_create (seed 002): a child on the parent's node that shares, copies or leaves out each
 * parent region by its inheritance (seed 003), with no threads, the parent's security token,
 * and memory charged to the [wired, paged] ledgers it is given (or its parent's).
 */
import { assert, describe, expect, it } from 'vitest';
import {
  DEFAULT_PAGE_SIZE, KERN_INVALID_ADDRESS, KERN_INVALID_ARGUMENT, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_SHARE, VM_PROT_ALL, VM_PROT_READ, type Kernel, type Ledger, type Task,
} from 'norma-rt';
import { bootKernel, byteAt, expectSplitRegionPassedPieceByPiece, itInOneProcess, snapshot, threeRegionParent, rejectsWith } from './helpers.js';

type Create = (kernel: Kernel, parent: Task, inheritMemory: boolean) => Promise<Task>;

/** task_create through each face; both must behave the same. */
const faces: Array<[string, Create]> = [
  ['Task.create', (_kernel, parent, inheritMemory) => parent.create({ inheritMemory })],
  ['mach.task_create', async (kernel, parent, inheritMemory) => {
    const reply = await kernel.mach.task_create(parent, null, 0, inheritMemory);
    expect(reply.kr).toBe(KERN_SUCCESS);
    assert(reply.child_task !== undefined, 'task_create returned no child_task');
    return reply.child_task;
  }],
];

describe.each(faces)('task_create through %s', (_face, create) => {
  it('maps a VM_INHERIT_SHARE region to the same memory object, so writes are visible both ways', async () => {
    const kernel = await bootKernel();
    const { parent, share } = await threeRegionParent(kernel);
    const child = await create(kernel, parent, true);

    const [parentRegion, childRegion] = [await parent.region(share), await child.region(share)];
    expect(childRegion.address).toBe(share);
    expect(childRegion.object).toBe(parentRegion.object);
    expect(childRegion.shared).toBe(true);
    expect((await parent.region(share)).shared).toBe(true);

    await parent.write(share, Uint8Array.of(0xa1));
    expect(await byteAt(child, share)).toBe(0xa1);
    await child.write(share + 1, Uint8Array.of(0xb2));
    expect(await byteAt(parent, share + 1)).toBe(0xb2);
  });

  it('gives a VM_INHERIT_COPY region a private copy of its contents at creation, independent both ways', async () => {
    const kernel = await bootKernel();
    const { parent, page, copy } = await threeRegionParent(kernel);
    const child = await create(kernel, parent, true);

    expect(await child.read(copy, page)).toEqual(new Uint8Array(page).fill(0x22));
    expect((await child.region(copy)).object).not.toBe((await parent.region(copy)).object);
    expect((await child.region(copy)).shared).toBe(false);

    await parent.write(copy, Uint8Array.of(0xa1));
    expect(await byteAt(child, copy)).toBe(0x22);
    await child.write(copy + 1, Uint8Array.of(0xb2));
    expect(await byteAt(parent, copy + 1)).toBe(0x22);
  });

  it('leaves a VM_INHERIT_NONE region out of the child and keeps the parent inheritance values on the rest', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy, none } = await threeRegionParent(kernel);
    const child = await create(kernel, parent, true);

    const regions = await child.regions();
    expect(regions.map(({ address, size, inheritance }) => ({ address, size, inheritance }))).toEqual([
      { address: share, size: page, inheritance: VM_INHERIT_SHARE },
      { address: copy, size: page, inheritance: VM_INHERIT_COPY },
    ]);
    await rejectsWith(child.read(none, 1), KERN_INVALID_ADDRESS);
  });

  it('with inherit_memory false gives the child an empty address space', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const child = await create(kernel, parent, false);

    expect(await child.regions()).toEqual([]);
    expect(await child.info()).toMatchObject({ virtualSize: 0, regionCount: 0 });
    expect((await parent.regions()).every((region) => !region.shared)).toBe(true);
  });

  it('creates the child on the parent node with no threads and a suspend count of 0', async () => {
    const kernel = await bootKernel();
    const { parent, page } = await threeRegionParent(kernel);
    await parent.suspend();
    const child = await create(kernel, parent, true);
    expect(child.node).toBe(0);
    expect(await child.info()).toMatchObject({
      node: 0, threadCount: 0, suspendCount: 0, regionCount: 2, virtualSize: 2 * page,
    });

    const remoteParent = await kernel.bootstrapTask.createOn(1);
    const remoteChild = await create(kernel, remoteParent, true);
    expect(remoteChild.node).toBe(1);
    expect(await remoteChild.info()).toMatchObject({ node: 1, threadCount: 0 });
  });
});

describe('task_create', () => {
  it('keeps each region protection and maximum protection in the child', async () => {
    const kernel = await bootKernel();
    const { parent, page, share, copy } = await threeRegionParent(kernel);
    await parent.protect(share, page, VM_PROT_READ);
    await parent.protect(copy, page, VM_PROT_READ, { setMaximum: true });
    const child = await parent.create();

    expect(await child.region(share)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_ALL });
    expect(await child.region(copy)).toMatchObject({ protection: VM_PROT_READ, maxProtection: VM_PROT_READ });
  });

  it('passes a region split by vm_inherit piece by piece: COPY pieces copied, the SHARE piece mapped at its offset in the same object', async () => {
    await expectSplitRegionPassedPieceByPiece(await bootKernel(), (parent) => parent.create());
  });

  it('gives the child the parent security token, set through either face', async () => {
    const kernel = await bootKernel();
    const parent = await kernel.bootstrapTask.create();
    await parent.setSecurityToken([7, 0xffffffff]);
    const child = await parent.create();
    expect((await child.info()).securityToken).toEqual([7, 0xffffffff]);

    expect(await kernel.mach.host_security_set_task_token(parent, [9, 10])).toBe(KERN_SUCCESS);
    const { child_task: second } = await kernel.mach.task_create(parent, null, 0, true);
    assert(second !== undefined);
    expect(await kernel.mach.task_info(second)).toMatchObject({ kr: KERN_SUCCESS, security_token: [9, 10] });
    // The first child's token is its own: setting the parent's later does not reach it.
    expect((await child.info()).securityToken).toEqual([7, 0xffffffff]);
  });

  it('returns KERN_INVALID_ARGUMENT for a parent that is not a task of this kernel and creates nothing', async () => {
    const kernel = await bootKernel();
    const other = await bootKernel({ nodes: 1 });
    const { parent: bystander } = await threeRegionParent(kernel);
    const before = await snapshot(bystander);
    const pagers = await kernel.pagerInfo();
    for (const parent of [null, undefined, 42, {}, { id: bystander.id, node: 0 }, other.bootstrapTask]) {
      expect(await kernel.mach.task_create(parent as never, null, 0, true)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    }
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await snapshot(bystander)).toEqual(before);
  });

  it('returns KERN_INVALID_ARGUMENT for a terminated parent through both faces', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    await parent.terminate();
    const pagers = await kernel.pagerInfo();
    await rejectsWith(parent.create(), KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.task_create(parent, null, 0, true)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('returns KERN_INVALID_ARGUMENT for an inherit_memory that is not a boolean and changes nothing', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();
    for (const inherit of [1, 'true', null]) {
      expect(await kernel.mach.task_create(parent, null, 0, inherit as never)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    }
    // (The idiomatic face reads a null option as "not given", so only non-null values here.)
    for (const inherit of [1, 'true']) {
      await rejectsWith(parent.create({ inheritMemory: inherit as never }), KERN_INVALID_ARGUMENT);
    }
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });
});

describe('task_create ledgers', () => {
  /** A parent drawing on its own [wired, paged] ledgers, so the root ledgers stay out of the way. */
  async function ledgeredParent(kernel: Kernel, pagedLimit = Infinity) {
    const wired = kernel.createLedger(Infinity);
    const paged = kernel.createLedger(pagedLimit);
    const parent = await kernel.bootstrapTask.create({ ledgers: [wired, paged] });
    return { parent, wired, paged };
  }

  it('charges vm_allocate in the child to its paged ledger, through either face', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent, paged: parentPaged } = await ledgeredParent(kernel);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(8 * page)];

    const child = await parent.create({ ledgers: [wired, paged] });
    await child.allocate(2 * page);
    const reply = await kernel.mach.task_create(parent, [wired, paged], 2, true);
    assert(reply.child_task !== undefined);
    expect((await kernel.mach.vm_allocate(reply.child_task, 0, 3 * page, true)).kr).toBe(KERN_SUCCESS);

    expect(paged.balance).toBe(5 * page);
    expect(wired.balance).toBe(0);
    expect(parentPaged.balance).toBe(0);
  });

  it('returns KERN_RESOURCE_SHORTAGE from vm_allocate past the child paged ledger and changes nothing', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent } = await ledgeredParent(kernel);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(3 * page)];
    const child = await parent.create({ ledgers: [wired, paged] });
    await child.allocate(2 * page);

    const before = await snapshot(child);
    const pagers = await kernel.pagerInfo();
    await rejectsWith(child.allocate(2 * page), KERN_RESOURCE_SHORTAGE);
    expect(await kernel.mach.vm_allocate(child, 0, 2 * page, true)).toEqual({ kr: KERN_RESOURCE_SHORTAGE, address: 0 });
    expect(await snapshot(child)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(paged.balance).toBe(2 * page);
    // What is left under the limit can still be had.
    await child.allocate(page);
    expect(paged.balance).toBe(3 * page);
  });

  it('charges the private copies of VM_INHERIT_COPY regions to the child paged ledger, not SHARE regions', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent } = await ledgeredParent(kernel);
    const shared = await parent.allocate(4 * page);
    await parent.inherit(shared, 4 * page, VM_INHERIT_SHARE);
    await parent.allocate(2 * page);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(2 * page)];

    const child = await parent.create({ ledgers: [wired, paged] });
    expect(paged.balance).toBe(2 * page);
    await rejectsWith(child.allocate(1), KERN_RESOURCE_SHORTAGE);
  });

  it('returns KERN_RESOURCE_SHORTAGE when a COPY region exceeds the paged ledger, creating no child and freeing partial copies', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent } = await ledgeredParent(kernel);
    await parent.allocate(page);
    await parent.allocate(8 * page);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(4 * page)];
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    // The one-page copy fits and is made first; the eight-page one does not.
    await rejectsWith(parent.create({ ledgers: [wired, paged] }), KERN_RESOURCE_SHORTAGE);
    expect(await kernel.mach.task_create(parent, [wired, paged], 2, true)).toEqual({ kr: KERN_RESOURCE_SHORTAGE });

    expect(paged.balance).toBe(0);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await snapshot(parent)).toEqual(before);
    expect((await parent.regions()).every((region) => !region.shared)).toBe(true);
  });

  it('credits the ledger back when the child memory is freed: balance 0 after task_terminate', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent } = await ledgeredParent(kernel);
    const copied = await parent.allocate(2 * page);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(16 * page)];
    const child = await parent.create({ ledgers: [wired, paged] });
    const own = await child.allocate(3 * page);
    expect(paged.balance).toBe(5 * page);

    await child.deallocate(own, 3 * page);
    expect(paged.balance).toBe(2 * page);
    expect(await kernel.mach.task_terminate(child)).toBe(KERN_SUCCESS);
    expect(paged.balance).toBe(0);
    expect(await byteAt(parent, copied)).toBe(0);
  });

  itInOneProcess('a ledger is a SharedArrayBuffer of one process: each process bounds its own share')('bounds every descendant of the bootstrap task together by the kernel memoryLimit, on every node', async () => {
    const kernel = await bootKernel({ memoryLimit: 4 * DEFAULT_PAGE_SIZE });
    const page = kernel.pageSize;
    const paged = kernel.rootLedgers[1];
    const near = await kernel.bootstrapTask.create();
    const far = await kernel.bootstrapTask.createOn(1);
    await near.allocate(3 * page);

    const before = await snapshot(far);
    await rejectsWith(far.allocate(2 * page), KERN_RESOURCE_SHORTAGE);
    expect(await snapshot(far)).toEqual(before);
    await far.allocate(page);
    expect(paged.balance).toBe(4 * page);
    await near.terminate();
    expect(paged.balance).toBe(page);
  });

  it('uses the parent ledgers when ledger_count is wrong or an entry is null', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const { parent, paged: parentPaged } = await ledgeredParent(kernel);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(Infinity)];
    const cases: Array<[readonly (Ledger | null)[], number]> = [
      [[wired, paged], 1],
      [[wired, paged], 3],
      [[wired, paged, paged], 3],
      [[wired], 1],
      [[wired, null], 2],
      [[null, paged], 2],
      [[], 0],
    ];
    for (const [ledgers, count] of cases) {
      const reply = await kernel.mach.task_create(parent, ledgers, count, true);
      expect(reply.kr).toBe(KERN_SUCCESS);
      assert(reply.child_task !== undefined);
      await reply.child_task.allocate(page);
    }
    expect(parentPaged.balance).toBe(cases.length * page);
    expect(paged.balance).toBe(0);
    expect(wired.balance).toBe(0);
  });

  it('returns KERN_INVALID_ARGUMENT for a ledger array holding something that is not a ledger and changes nothing', async () => {
    const kernel = await bootKernel();
    const { parent } = await ledgeredParent(kernel);
    await parent.allocate(kernel.pageSize);
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(Infinity)];
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    for (const ledgers of [[wired, 42], ['paged', paged], [wired, {}], [wired, { id: 1 }], 'ledgers', 7]) {
      expect(await kernel.mach.task_create(parent, ledgers as never, 2, true)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    }
    await rejectsWith(parent.create({ ledgers: [wired, {} as Ledger] }), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.create({ ledgers: [7 as unknown as Ledger, paged] }), KERN_INVALID_ARGUMENT);

    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(paged.balance).toBe(0);
  });
});
