/** vm_region through real nodes: the region at or above an address, splits, and `shared`. */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_SEND,
  VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE, VM_PROT_ALL,
  VM_PROT_DEFAULT, VM_PROT_READ,
} from 'norma-rt';
import { bootKernel, itInOneProcess, snapshot } from './helpers.js';

const BASE = 0x100000;

describe('vm_region', () => {
  it('vm_region returns KERN_SUCCESS and the region holding the address', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(3 * 4096, { address: BASE });
    for (const address of [BASE, BASE + 4096 + 17, BASE + 3 * 4096 - 1]) {
      expect(await kernel.mach.vm_region(task, address)).toEqual({
        kr: KERN_SUCCESS, address: BASE, size: 3 * 4096, protection: VM_PROT_DEFAULT, max_protection: VM_PROT_ALL,
        inheritance: VM_INHERIT_COPY, shared: false, offset: 0,
      });
      expect(await task.region(address)).toMatchObject({ address: BASE, size: 3 * 4096 });
    }
  });

  it('vm_region returns the next region above an unallocated address', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4096, { address: BASE });
    await task.allocate(2 * 4096, { address: BASE + 4 * 4096 });
    expect(await task.region(0)).toMatchObject({ address: BASE, size: 4096 });
    expect(await task.region(BASE - 1)).toMatchObject({ address: BASE, size: 4096 });
    expect(await kernel.mach.vm_region(task, BASE + 4096)).toMatchObject({ kr: KERN_SUCCESS, address: BASE + 4 * 4096, size: 2 * 4096 });
    expect(await task.region(BASE + 4 * 4096 - 1)).toMatchObject({ address: BASE + 4 * 4096, size: 2 * 4096 });
  });

  it('vm_region returns KERN_INVALID_ADDRESS when no region lies at or above the address and changes nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    const empty = await snapshot(task);
    await expect(task.region(0)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
    expect(await kernel.mach.vm_region(task, 0)).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(await snapshot(task)).toEqual(empty);
    await task.allocate(2 * 4096, { address: BASE });
    const before = await snapshot(task);
    for (const address of [BASE + 2 * 4096, BASE + 0x100000, 2 ** 47, -1, 1.5, Number.NaN]) {
      await expect(task.region(address)).rejects.toMatchObject({ code: 'KERN_INVALID_ADDRESS', kr: 1 });
      expect(await kernel.mach.vm_region(task, address)).toEqual({ kr: KERN_INVALID_ADDRESS });
    }
    expect(await snapshot(task)).toEqual(before);
  });

  it('vm_region shows the splits made by vm_protect and vm_inherit, each piece at its offset in one object', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    await task.allocate(4 * 4096, { address: BASE });
    await task.protect(BASE + 4096, 4096, VM_PROT_READ);
    await task.inherit(BASE + 2 * 4096, 4096, VM_INHERIT_NONE);
    // A vm_region walk: each call from the end of the previous region, until KERN_INVALID_ADDRESS.
    const walk: number[][] = [];
    let reply = await kernel.mach.vm_region(task, 0);
    while (reply.kr === KERN_SUCCESS) {
      assert('address' in reply);
      walk.push([reply.address, reply.size, reply.protection, reply.inheritance, reply.offset]);
      reply = await kernel.mach.vm_region(task, reply.address + reply.size);
    }
    expect(reply).toEqual({ kr: KERN_INVALID_ADDRESS });
    expect(walk).toEqual([
      [BASE, 4096, VM_PROT_DEFAULT, VM_INHERIT_COPY, 0],
      [BASE + 4096, 4096, VM_PROT_READ, VM_INHERIT_COPY, 4096],
      [BASE + 2 * 4096, 4096, VM_PROT_DEFAULT, VM_INHERIT_NONE, 2 * 4096],
      [BASE + 3 * 4096, 4096, VM_PROT_DEFAULT, VM_INHERIT_COPY, 3 * 4096],
    ]);
    const regions = await task.regions();
    expect(new Set(regions.map((region) => region.object)).size).toBe(1);
    // Pieces of one object in one map are not "shared".
    expect(regions.every((region) => !region.shared)).toBe(true);
  });

  it('vm_region reports shared true only while another task maps the object', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(4096, { address: BASE });
    await parent.allocate(4096, { address: BASE + 4096 });
    await parent.inherit(BASE, 4096, VM_INHERIT_SHARE);
    expect(await parent.region(BASE)).toMatchObject({ shared: false });
    const child = await parent.create();
    expect(await kernel.mach.vm_region(parent, BASE)).toMatchObject({ kr: KERN_SUCCESS, shared: true });
    expect(await child.region(BASE)).toMatchObject({ shared: true });
    // The COPY region gave the child an object of its own.
    expect(await parent.region(BASE + 4096)).toMatchObject({ shared: false });
    expect(await child.region(BASE + 4096)).toMatchObject({ shared: false });
    // A grandchild that unmaps its share leaves the object shared between parent and child.
    const grandchild = await child.create();
    expect(await grandchild.region(BASE)).toMatchObject({ address: BASE, shared: true });
    await grandchild.deallocate(BASE, 4096);
    expect(await parent.region(BASE)).toMatchObject({ shared: true });
    await child.terminate();
    expect(await kernel.mach.vm_region(parent, BASE)).toMatchObject({ kr: KERN_SUCCESS, shared: false });
  });

  it('vm_region reports shared across nodes until the remote child unmaps the object', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const parent = kernel.bootstrapTask;
    await parent.allocate(2 * 4096, { address: BASE });
    await parent.inherit(BASE, 2 * 4096, VM_INHERIT_SHARE);
    const child = await parent.createOn(1);
    expect(await child.region(BASE)).toMatchObject({ shared: true });
    await child.deallocate(BASE, 4096);
    expect(await parent.region(BASE)).toMatchObject({ shared: true });
    await child.deallocate(BASE + 4096, 4096);
    expect(await parent.region(BASE)).toMatchObject({ shared: false });
  });

  itInOneProcess('a message for another process is taken off its queue at once by the gateway')('vm_region reports shared false while only a queued message references the object, true once another task maps it', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const sender = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const receiver = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    const port = await receiver.allocatePort();
    await sender.insertRight(0x1001, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const region = await sender.allocate(4096);
    await sender.send({ remotePort: 0x1001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ool: [{ address: region, size: 4096, share: true }] });
    // The message holds a reference to the object until it is received, but maps nothing.
    expect(await sender.region(region)).toMatchObject({ shared: false });
    expect(await kernel.mach.vm_region(sender, region)).toMatchObject({ kr: KERN_SUCCESS, shared: false });
    const received = await receiver.receive(port, { timeout: 5000 });
    const { address } = received.ool[0]!;
    expect(await sender.region(region)).toMatchObject({ shared: true });
    expect(await receiver.region(address)).toMatchObject({ shared: true });
    await receiver.deallocate(address, 4096);
    expect(await kernel.mach.vm_region(sender, region)).toMatchObject({ kr: KERN_SUCCESS, shared: false });
  });
});
