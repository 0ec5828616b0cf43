/**
 * norma_task_teleport (seed 001): a clone onto child_node, then the parent is terminated. The
 * child takes all of the parent's memory (shared with nobody afterwards); every later call
 * naming the parent is KERN_INVALID_ARGUMENT. Teleport onto the parent's own node returns the
 * parent itself, unchanged.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_TERMINATED, VM_INHERIT_COPY, VM_PROT_READ, type Task,
} from 'norma-rt';
import { bootKernel, fixture, itInOneProcess, normaFaces, snapshot, threeRegionParent, rejectsWith } from './helpers.js';

/** Regions without the `shared` flag, which teleport is expected to change. */
function layout(regions: Awaited<ReturnType<Task['regions']>>) {
  return regions.map(({ address, size, protection, maxProtection, inheritance, offset, object }) =>
    ({ address, size, protection, maxProtection, inheritance, offset, object }));
}

const faces = normaFaces('norma_task_teleport');

describe.each(faces)('norma_task_teleport through %s', (_face, teleport) => {
  itInOneProcess('a move to another process copies the pages: new objects on the child\'s node')('moves all the memory to the child on child_node, contents and inheritance intact, shared with nobody', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    const child = await teleport(kernel, parent, true, 1);
    expect(child.node).toBe(1);
    expect(await child.info()).toMatchObject({ node: 1, threadCount: 0, regionCount: 3 });
    const after = await snapshot(child);
    expect(layout(after.regions)).toEqual(layout(before.regions));
    expect(after.bytes).toEqual(before.bytes);
    expect(after.regions.every((region) => !region.shared)).toBe(true);
    // Moved, not copied: the pagers hold exactly what they held.
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('terminates the parent: every later call naming it returns KERN_INVALID_ARGUMENT', async () => {
    const kernel = await bootKernel();
    const { parent, page, share } = await threeRegionParent(kernel);
    const child = await teleport(kernel, parent, true, 1);
    const before = await snapshot(child);
    const pagers = await kernel.pagerInfo();
    const { mach } = kernel;

    expect(await mach.vm_read(parent, share, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.vm_write(parent, share, Uint8Array.of(1))).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.vm_allocate(parent, 0, page, true)).toEqual({ kr: KERN_INVALID_ARGUMENT, address: 0 });
    expect(await mach.vm_deallocate(parent, share, page)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.vm_protect(parent, share, page, false, VM_PROT_READ)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.vm_inherit(parent, share, page, VM_INHERIT_COPY)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.vm_region(parent, 0)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.vm_copy(parent, share, page, share)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_info(parent)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.task_create(parent, null, 0, true)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.norma_task_create(parent, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.norma_task_clone(parent, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.norma_task_teleport(parent, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.norma_task_teleport(parent, true, 0)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await mach.task_suspend(parent)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_resume(parent)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.host_security_set_task_token(parent, [1, 2])).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_terminate(parent)).toBe(KERN_INVALID_ARGUMENT);

    await rejectsWith(parent.read(share, 1), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.write(share, Uint8Array.of(1)), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.allocate(page), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.deallocate(share, page), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.protect(share, page, VM_PROT_READ), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.inherit(share, page, VM_INHERIT_COPY), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.region(0), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.regions(), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.view(share, 4), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.info(), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.create(), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.createOn(1), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.clone(1), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.teleport(1), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.suspend(), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.resume(), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.setSecurityToken([1, 2]), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.execute(fixture('counter.mjs'), 'readWord', share), KERN_INVALID_ARGUMENT);
    await rejectsWith(parent.terminate(), KERN_INVALID_ARGUMENT);

    expect(await snapshot(child)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('onto the parent own node returns the parent itself, unchanged and alive', async () => {
    const kernel = await bootKernel();
    const { parent, page } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    const same = await teleport(kernel, parent, true, 0);
    expect(same.id).toBe(parent.id);
    expect(same.node).toBe(0);
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await parent.info()).toMatchObject({ node: 0, regionCount: 3 });
    expect(await same.allocate(page)).toBeGreaterThan(0);
  });

  it('with inherit_memory false gives an empty child, still terminates the parent and frees its memory', async () => {
    const kernel = await bootKernel();
    const baseline = await kernel.pagerInfo();
    const { parent } = await threeRegionParent(kernel);

    const child = await teleport(kernel, parent, false, 1);
    expect(child.node).toBe(1);
    expect(await child.regions()).toEqual([]);
    await rejectsWith(parent.info(), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(baseline);
  });
});

describe('norma_task_teleport', () => {
  it('leaves a SHARE sibling sharing with the teleported child', async () => {
    const kernel = await bootKernel();
    const { parent, share, copy } = await threeRegionParent(kernel);
    const sibling = await parent.create();
    const child = await parent.teleport(1);

    expect((await child.region(share)).object).toBe((await sibling.region(share)).object);
    expect((await child.region(share)).shared).toBe(true);
    expect((await child.region(copy)).shared).toBe(false);
    await sibling.write(share, Uint8Array.of(0x99));
    expect((await child.read(share, 1))[0]).toBe(0x99);
  });

  itInOneProcess('a move to another process copies the pages: new objects on each hop')('can hop back: node 0 to node 1 to node 0, memory and pagers unchanged', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    const away = await parent.teleport(1);
    const back = await away.teleport(0);
    expect(back.node).toBe(0);
    const after = await snapshot(back);
    expect(layout(after.regions)).toEqual(layout(before.regions));
    expect(after.bytes).toEqual(before.bytes);
    await rejectsWith(away.info(), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('fails code waiting in the suspended parent with KERN_TERMINATED', async () => {
    const kernel = await bootKernel();
    const { parent, share } = await threeRegionParent(kernel);
    const sibling = await parent.create();
    await sibling.execute(fixture('counter.mjs'), 'readWord', share);
    await parent.suspend();
    const waiting = parent.execute(fixture('counter.mjs'), 'bump', share, 1).catch((error: unknown) => error);
    // A call on the same node after the held one: by its end the held call is waiting to run.
    await sibling.execute(fixture('counter.mjs'), 'readWord', share);
    const child = await parent.teleport(1);

    expect(await waiting).toMatchObject({ name: 'KernError', code: 'KERN_TERMINATED', kr: KERN_TERMINATED });
    // The bump never ran: the moved bytes are as they were.
    expect((await child.read(share, 4))).toEqual(new Uint8Array(4).fill(0x11));
  });

  it('returns KERN_INVALID_ARGUMENT for a child_node that is not an integer in [0, nodes), leaving the parent alive and unchanged', async () => {
    const kernel = await bootKernel();
    const { parent } = await threeRegionParent(kernel);
    const before = await snapshot(parent);
    const pagers = await kernel.pagerInfo();

    for (const node of [2, -1, 1.5, '1', NaN, null]) {
      expect(await kernel.mach.norma_task_teleport(parent, true, node as never)).toEqual({ kr: KERN_INVALID_ARGUMENT });
      await rejectsWith(parent.teleport(node as never), KERN_INVALID_ARGUMENT);
    }
    expect(await kernel.mach.norma_task_teleport(parent, 1 as never, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await kernel.mach.norma_task_teleport(null as never, true, 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.pagerInfo()).toEqual(pagers);
    expect(await parent.info()).toMatchObject({ node: 0, regionCount: 3 });
  });
});
