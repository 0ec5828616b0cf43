/**
 * mach_msg_trap (issue 10): mach_msg with no promise for a thread's tight loop. It answers
 * synchronously, never waits (Mach's timeout 0: MACH_SEND_TIMED_OUT / MACH_RCV_TIMED_OUT,
 * changing nothing), and refuses to enter, doing nothing, when the thread must stop at its
 * gate or its timeslice is spent; the awaitable mach_msg then takes over.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_RCV_INTERRUPTED, MACH_RCV_INVALID_NAME, MACH_RCV_TIMED_OUT,
  MACH_SEND_INTERRUPTED, MACH_SEND_INVALID_DEST, MACH_SEND_TIMED_OUT,
} from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

const trap = fixture('trap.mjs');

describe('mach_msg_trap', () => {
  it('answers every case synchronously, as mach_msg with timeouts of 0 would, and a full queue stays as it was', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const log = await (await task.spawn(trap, 'answers')).join();
    expect(log).toEqual([
      { kr: MACH_RCV_TIMED_OUT },
      { kr: KERN_SUCCESS },
      { kr: KERN_SUCCESS },
      { kr: MACH_SEND_TIMED_OUT },
      { kr: MACH_SEND_TIMED_OUT },
      { kr: KERN_SUCCESS, id: 1, body: [1] },
      { kr: KERN_SUCCESS, id: 2, body: [2] },
      { kr: KERN_SUCCESS, id: 5, body: [5] },
      { kr: MACH_RCV_INVALID_NAME },
      { kr: MACH_SEND_INVALID_DEST },
      { kr: KERN_INVALID_ARGUMENT },
    ].map((entry) => ({ id: undefined, body: undefined, ...entry })));
  });

  it('ends a timeslice with MACH_RCV_INTERRUPTED after 256 calls in one turn; awaited mach_msg goes on', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const result = await (await task.spawn(trap, 'slice')).join() as { calls: number; interrupted: number; after: number; again: unknown };
    expect(result.calls).toBeLessThan(256);
    expect(result.interrupted).toBe(MACH_RCV_INTERRUPTED);
    expect(result.after).toBe(KERN_SUCCESS);
    expect(result.again).toEqual({ kr: KERN_SUCCESS, id: 9 });
  });

  it('task code whose mach_msg calls all complete at once still lets its node serve the host (the timeslice)', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const address = await task.allocate(kernel.pageSize);
    const bytes = await task.view(address, 8);
    const words = new Int32Array(bytes.buffer, bytes.byteOffset, 2);
    const looping = task.execute(trap, 'loopUntilStopped', address);
    // Each task_info is answered while the loop runs: the node's event loop turns every slice
    // of calls. Without the slice the first one asked after the loop started would never be.
    for (let tries = 0; Atomics.load(words, 1) === 0; tries++) {
      expect(tries).toBeLessThan(20_000);
      await task.info();
    }
    // The loop is running now and only the host stops it: this answer came from a busy node.
    const seen = Atomics.load(words, 1);
    expect(await task.info()).toMatchObject({ node: 0 });
    Atomics.store(words, 0, 1);
    expect(await looping).toBeGreaterThanOrEqual(seen);
  });

  it('refuses to enter for a thread whose task was suspended under it, sending nothing', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const thread = await task.spawn(trap, 'suspended');
    for (let tries = 0; (await task.info()).suspendCount === 0; tries++) expect(tries).toBeLessThan(20_000);
    await task.resume();
    expect(await thread.join()).toEqual({ refused: MACH_SEND_INTERRUPTED, queued: MACH_RCV_TIMED_OUT });
  });
});
