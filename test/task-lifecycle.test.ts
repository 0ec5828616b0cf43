/**
 * A task's life after creation: task_terminate (memory objects freed once no task maps them),
 * task_suspend / task_resume (a count; code run with execute waits while it is above 0),
 * task_info, host_security_set_task_token, and execute itself.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_SUCCESS, KERN_TERMINATED, VM_INHERIT_SHARE, type Kernel, type Task,
} from 'norma-rt';
import { bootKernel, crossProcess, fixture, snapshot, rejectsWith } from './helpers.js';

const COUNTER = fixture('counter.mjs');

function word(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
}

/** A task on `node` with one shared page (a counter) and a SHARE sibling on the same node. */
async function taskWithSibling(kernel: Kernel, node = 0) {
  const task = await kernel.bootstrapTask.createOn(node);
  const counter = await task.allocate(kernel.pageSize);
  await task.inherit(counter, kernel.pageSize, VM_INHERIT_SHARE);
  const sibling = await task.create();
  // Load the fixture module on the node once, so later executes differ only in when they may run.
  await sibling.execute(COUNTER, 'readWord', counter);
  return { task, sibling, counter };
}

describe('task_terminate', () => {
  it('frees a SHARE region object only when the last task mapping it is terminated', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const baseline = await kernel.pagerInfo();
    const parent = await kernel.bootstrapTask.create();
    const shared = await parent.allocate(4 * page);
    await parent.inherit(shared, 4 * page, VM_INHERIT_SHARE);
    const child = await parent.create();
    const mapped = await kernel.pagerInfo();
    expect(mapped[0]).toMatchObject({ objects: baseline[0]!.objects + 1, bytes: baseline[0]!.bytes + 4 * page });

    await parent.terminate();
    expect(await kernel.pagerInfo()).toEqual(mapped);
    expect((await child.region(shared)).shared).toBe(false);
    expect(await kernel.mach.task_terminate(child)).toBe(KERN_SUCCESS);
    expect(await kernel.pagerInfo()).toEqual(baseline);
  });

  it('frees an object homed on node 0 when a clone on node 1, terminated last, unmaps it', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const baseline = await kernel.pagerInfo();
    const parent = await kernel.bootstrapTask.create();
    const region = await parent.allocate(2 * page);
    await parent.write(region, Uint8Array.of(0x42));
    const clone = await parent.clone(1);
    const mapped = await kernel.pagerInfo();
    expect(mapped).toEqual([
      { node: 0, objects: baseline[0]!.objects + 1, bytes: baseline[0]!.bytes + 2 * page },
      // In another process the clone maps a placeholder of its own (remote-memory.ts); the memory stays on node 0.
      crossProcess ? { node: 1, objects: baseline[1]!.objects + 1, bytes: baseline[1]!.bytes + 2 * page } : baseline[1],
    ]);

    await parent.terminate();
    expect(await kernel.pagerInfo()).toEqual(mapped);
    expect((await clone.read(region, 1))[0]).toBe(0x42);
    await clone.terminate();
    expect(await kernel.pagerInfo()).toEqual(baseline);
  });

  it('frees the private copies of a COPY child when the child is terminated, leaving the parent whole', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const parent = await kernel.bootstrapTask.create();
    await parent.allocate(3 * page);
    const before = await snapshot(parent);
    const withParent = await kernel.pagerInfo();
    const local = await parent.create();
    const remote = await parent.createOn(1);
    // In another process the remote child's copy is an object of its own node's pager.
    const pagers = await kernel.pagerInfo();
    expect(pagers[0]!.objects).toBe(withParent[0]!.objects + (crossProcess ? 1 : 2));
    if (crossProcess) expect(pagers[1]!.objects).toBe(withParent[1]!.objects + 1);

    await local.terminate();
    await remote.terminate();
    expect(await kernel.pagerInfo()).toEqual(withParent);
    expect(await snapshot(parent)).toEqual(before);
  });

  it('returns KERN_INVALID_ARGUMENT when the task is terminated a second time, through both faces', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    await task.allocate(kernel.pageSize);
    expect(await kernel.mach.task_terminate(task)).toBe(KERN_SUCCESS);
    const pagers = await kernel.pagerInfo();

    expect(await kernel.mach.task_terminate(task)).toBe(KERN_INVALID_ARGUMENT);
    await rejectsWith(task.terminate(), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });
});

describe('task_suspend and task_resume', () => {
  it('raise and lower the suspend count task_info reports, through both faces', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    await task.suspend();
    expect(await kernel.mach.task_suspend(task)).toBe(KERN_SUCCESS);
    await task.suspend();
    expect((await task.info()).suspendCount).toBe(3);
    expect(await kernel.mach.task_resume(task)).toBe(KERN_SUCCESS);
    await task.resume();
    expect(await kernel.mach.task_info(task)).toMatchObject({ kr: KERN_SUCCESS, suspend_count: 1 });
  });

  it('task_resume at suspend count 0 returns KERN_FAILURE and leaves the count at 0', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.create();
    await task.allocate(kernel.pageSize);
    const before = await snapshot(task);

    expect(await kernel.mach.task_resume(task)).toBe(KERN_FAILURE);
    await rejectsWith(task.resume(), KERN_FAILURE);
    expect((await task.info()).suspendCount).toBe(0);
    expect(await snapshot(task)).toEqual(before);

    // And after a balanced suspend/resume, the next resume fails the same way.
    await task.suspend();
    await task.resume();
    expect(await kernel.mach.task_resume(task)).toBe(KERN_FAILURE);
    expect((await task.info()).suspendCount).toBe(0);
  });

  it('hold code run with execute until the count is back to 0', async () => {
    const kernel = await bootKernel();
    const { task, sibling, counter } = await taskWithSibling(kernel);
    await task.suspend();
    await task.suspend();

    let resumed = false;
    const held = task.execute(COUNTER, 'bump', counter, 1).then((result) => ({ result, resumed }));
    // The sibling runs on the same node after the held call was taken in; it sees no bump.
    await sibling.execute(COUNTER, 'bump', counter, 10);
    expect(word(await sibling.read(counter, 4))).toBe(10);

    await task.resume();
    await sibling.execute(COUNTER, 'readWord', counter);
    expect(word(await sibling.read(counter, 4))).toBe(10);
    expect((await task.info()).suspendCount).toBe(1);

    resumed = true;
    await task.resume();
    expect(await held).toEqual({ result: { node: 0, task: task.id }, resumed: true });
    expect(word(await sibling.read(counter, 4))).toBe(11);
  });

  it('terminating a suspended task fails the waiting execute with KERN_TERMINATED', async () => {
    const kernel = await bootKernel();
    const { task, sibling, counter } = await taskWithSibling(kernel, 1);
    await task.suspend();
    const waiting = task.execute(COUNTER, 'bump', counter, 1).catch((error: unknown) => error);
    await sibling.execute(COUNTER, 'readWord', counter);

    await task.terminate();
    expect(await waiting).toMatchObject({ name: 'KernError', code: 'KERN_TERMINATED', kr: KERN_TERMINATED });
    expect(word(await sibling.read(counter, 4))).toBe(0);
  });

  it('return KERN_INVALID_ARGUMENT for a terminated task or something that is not a task', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.create();
    await task.allocate(kernel.pageSize);
    await task.terminate();
    const pagers = await kernel.pagerInfo();
    expect(await kernel.mach.task_suspend(task)).toBe(KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.task_resume(task)).toBe(KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.task_suspend({} as never)).toBe(KERN_INVALID_ARGUMENT);
    await rejectsWith(task.suspend(), KERN_INVALID_ARGUMENT);
    await rejectsWith(task.resume(), KERN_INVALID_ARGUMENT);
    expect(await kernel.pagerInfo()).toEqual(pagers);
  });

  it('a suspended task still serves vm calls and task creation; its child starts at count 0', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.create();
    await task.suspend();
    const address = await task.allocate(kernel.pageSize);
    await task.write(address, Uint8Array.of(5));
    const child = await task.createOn(1);
    expect((await child.read(address, 1))[0]).toBe(5);
    expect((await child.info()).suspendCount).toBe(0);
    expect((await task.info()).suspendCount).toBe(1);
  });
});

describe('task_info', () => {
  it('reports node, suspend count, virtual size, region count, no threads and the security token, through both faces', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const task = await kernel.bootstrapTask.createOn(1);
    const region = await task.allocate(4 * page);
    await task.allocate(page);
    await task.inherit(region + page, page, VM_INHERIT_SHARE); // splits the first region in three
    await task.suspend();
    await task.setSecurityToken([11, 12]);

    expect(await task.info()).toEqual({
      node: 1, suspendCount: 1, virtualSize: 5 * page, regionCount: 4, threadCount: 0, securityToken: [11, 12],
    });
    expect(await kernel.mach.task_info(task)).toEqual({
      kr: KERN_SUCCESS, node: 1, suspend_count: 1, virtual_size: 5 * page, region_count: 4, thread_count: 0,
      security_token: [11, 12],
    });
  });

  it('host_security_set_task_token returns KERN_INVALID_ARGUMENT for a malformed token and keeps the old one', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.create();
    await task.setSecurityToken([1, 2]);
    await task.allocate(kernel.pageSize);
    const [before, info] = [await snapshot(task), await task.info()];
    for (const token of [[1], [1, 2, 3], [-1, 0], [0, 2 ** 32], [0.5, 0], ['1', '2'], null]) {
      expect(await kernel.mach.host_security_set_task_token(task, token as never)).toBe(KERN_INVALID_ARGUMENT);
      await rejectsWith(task.setSecurityToken(token as never), KERN_INVALID_ARGUMENT);
    }
    expect(await task.info()).toEqual(info);
    expect(info.securityToken).toEqual([1, 2]);
    expect(await snapshot(task)).toEqual(before);
  });

  it('returns KERN_INVALID_ARGUMENT for a terminated task, through both faces', async () => {
    const kernel = await bootKernel();
    const task: Task = await kernel.bootstrapTask.create();
    await task.terminate();
    expect(await kernel.mach.task_info(task)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await rejectsWith(task.info(), KERN_INVALID_ARGUMENT);
  });
});

describe('execute', () => {
  it('runs the export on the task node with a view of the task memory and resolves to its result', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const counter = await task.allocate(kernel.pageSize);
    expect(await task.execute(COUNTER, 'bump', counter, 7)).toEqual({ node: 1, task: task.id });
    expect(await task.execute(COUNTER, 'readWord', counter)).toBe(7);
    expect(word(await task.read(counter, 4))).toBe(7);
  });

  it('rejects with KERN_FAILURE carrying the error when the code throws, and KERN_INVALID_ARGUMENT for a missing export', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.create();
    await task.allocate(kernel.pageSize);
    const before = await snapshot(task);
    const failure = await task.execute(COUNTER, 'fail').catch((error: unknown) => error);
    expect(failure).toMatchObject({ code: 'KERN_FAILURE', kr: KERN_FAILURE, cause: { name: 'TypeError', message: 'fixture failure' } });
    await rejectsWith(task.execute(COUNTER, 'noSuchExport'), KERN_INVALID_ARGUMENT);
    // An address outside the map fails inside the code, as a fault would.
    await rejectsWith(task.execute(COUNTER, 'readWord', 0), KERN_FAILURE);
    expect(await snapshot(task)).toEqual(before);
  });
});
