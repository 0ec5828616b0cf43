import { describe, expect, it } from 'vitest';
import {
  Kernel, KernError, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_SUCCESS, DEFAULT_PAGE_SIZE,
} from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

describe('Kernel.boot', () => {
  it('starts the requested nodes with a bootstrap task on node 0 whose address space is empty', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    expect(kernel.nodes).toBe(3);
    expect(kernel.pageSize).toBe(DEFAULT_PAGE_SIZE);
    expect(kernel.bootstrapTask.node).toBe(0);
    expect(await kernel.bootstrapTask.regions()).toEqual([]);
    const info = await kernel.bootstrapTask.info();
    expect(info).toMatchObject({ node: 0, regionCount: 0, virtualSize: 0, suspendCount: 0, threadCount: 0 });
  });

  it('rejects malformed options with RangeError before starting any node', async () => {
    await expect(Kernel.boot({ nodes: 0 })).rejects.toBeInstanceOf(RangeError);
    await expect(Kernel.boot({ nodes: 1.5 })).rejects.toBeInstanceOf(RangeError);
    await expect(Kernel.boot({ pageSize: 3000 })).rejects.toBeInstanceOf(RangeError);
  });

  it('host_page_size answers the booted page size', async () => {
    const kernel = await bootKernel({ nodes: 1, pageSize: 16384 });
    expect(await kernel.mach.host_page_size()).toEqual({ kr: KERN_SUCCESS, page_size: 16384 });
  });

  it('shutdown fails later calls with KERN_NODE_DOWN instead of hanging, and is idempotent', async () => {
    const kernel = await bootKernel();
    const task = kernel.bootstrapTask;
    await kernel.shutdown();
    await kernel.shutdown();
    await expect(task.allocate(4096)).rejects.toMatchObject({ code: 'KERN_NODE_DOWN', kr: KERN_NODE_DOWN });
    expect((await kernel.mach.vm_allocate(task, 0, 4096, true)).kr).toBe(KERN_NODE_DOWN);
  });

  it('a crashed node fails the call in flight with a typed KernError', async () => {
    const kernel = await bootKernel();
    const child = await kernel.bootstrapTask.createOn(1);
    const inFlight = child.execute(fixture('counter.mjs'), 'crash');
    await expect(inFlight).rejects.toBeInstanceOf(KernError);
    await expect(inFlight).rejects.toMatchObject({ kr: KERN_NODE_DOWN });
    // The other node keeps serving.
    expect(await kernel.bootstrapTask.allocate(4096)).toBeGreaterThan(0);
  });

  it('the facade answers KERN_INVALID_ARGUMENT for a task that is not a task of this kernel', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const other = await bootKernel({ nodes: 1 });
    expect((await kernel.mach.vm_allocate(other.bootstrapTask, 0, 4096, true)).kr).toBe(KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.task_terminate(null as never)).toBe(KERN_INVALID_ARGUMENT);
  });
});
