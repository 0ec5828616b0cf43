/**
 * Task code forking its own task (issue 9 item 3): the four task-creation calls on context.mach,
 * the parent a task port name in the caller's space, the child answered as one; a child on
 * another node answers the calling node, not the host.
 */
import { describe, expect, it } from 'vitest';
import { KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_SEND_INVALID_DEST } from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

const forks = fixture('threads-fork.mjs');

describe('context.mach task creation', () => {
  it('a thread clones its task onto node 1 and a thread there writes memory it waits on', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(0);
    const page = await task.allocate(kernel.pageSize);
    const thread = await task.spawn(forks, 'cloneAndMeet', page, 1);
    expect(await thread.join()).toEqual({ value: 42, childNode: 1, childTask: KERN_SUCCESS, here: 0 });
    const words = new Int32Array((await task.view(page, 4)).buffer, 0, 1);
    expect(Atomics.load(words, 0)).toBe(42);
  });

  it('task.execute code teleports a child to another node; the answer reaches it there', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(0);
    const page = await task.allocate(kernel.pageSize);
    expect(await task.execute(forks, 'createThenTeleport', page, 1, 0)).toMatchObject({
      kr: KERN_SUCCESS, node: 1, word: 0, oldParent: MACH_SEND_INVALID_DEST,
    });
  });

  it('forks a parent that lives on another node: children here, on its node and on a third', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const task = await kernel.bootstrapTask.createOn(0);
    await task.allocate(kernel.pageSize);
    const thread = await task.spawn(forks, 'remoteParents', kernel.nodes);
    expect(await thread.join()).toEqual({ here: 0, parentsNode: 1, third: 2 });
  });

  it('bad input answers the host face codes and changes nothing', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(0);
    const before = await task.info();
    const host = kernel.mach;
    expect((await host.norma_task_create(task, true, kernel.nodes)).kr).toBe(KERN_INVALID_ARGUMENT);
    expect((await host.norma_task_create(task, 'yes' as never, 0)).kr).toBe(KERN_INVALID_ARGUMENT);
    const thread = await task.spawn(forks, 'badForkCodes', kernel.nodes);
    expect(await thread.join()).toEqual({
      badNode: KERN_INVALID_ARGUMENT, negativeNode: KERN_INVALID_ARGUMENT, fractionNode: KERN_INVALID_ARGUMENT,
      notBoolean: KERN_INVALID_ARGUMENT, notATask: KERN_INVALID_ARGUMENT,
      // Refused, not done: Mach would terminate the caller, whose call could never return.
      teleportSelf: KERN_INVALID_ARGUMENT,
      created: KERN_SUCCESS, childNode: 0, terminated: KERN_SUCCESS, deadParent: KERN_INVALID_ARGUMENT, selfAfter: 0,
    });
    const after = await task.info();
    expect({ node: after.node, regions: after.regionCount }).toEqual({ node: before.node, regions: before.regionCount });
  });
});
