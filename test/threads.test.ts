/**
 * Threads (issue 9, first landing): spawn/join, the thread_* calls on both faces, suspension,
 * abort and termination at the call gate, typed views with Atomics and wait() across nodes
 * with the library Barrier, and bad input that changes nothing. No sleeps: every "until" below
 * polls through kernel round trips.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_SUCCESS, KERN_TERMINATED, KernError, MACH_MSG_TYPE_MAKE_SEND,
  MACH_RCV_INTERRUPTED, MACH_SEND_INTERRUPTED, MACH_SEND_INVALID_DEST, NORMA_THREAD_STATE_JS,
  TH_STATE_HALTED, TH_STATE_RUNNING, TH_STATE_STOPPED, TH_STATE_WAITING, THREAD_BASIC_INFO, Thread,
  VM_INHERIT_SHARE, type Task,
} from 'norma-rt';
import { Deadline, systemClock } from '../src/actors/ipc/clock.js';
import { bootKernel, fixture } from './helpers.js';

const basic = fixture('threads-basic.mjs');

/** Polls `probe` (each try a kernel round trip) until it holds; fails after `tries`. */
async function until(probe: () => Promise<boolean>, tries = 20_000): Promise<void> {
  for (let i = 0; i < tries; i++) if (await probe()) return;
  throw new Error('condition never held');
}

async function rejection(promise: Promise<unknown>): Promise<KernError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(KernError);
  return error as KernError;
}

/** A task on node 1 with one page of memory, and an Int32 view of it from the host. */
async function taskWithPage(node = 1): Promise<{ task: Task; page: number; words: Int32Array }> {
  const kernel = await bootKernel();
  const task = await kernel.bootstrapTask.createOn(node);
  const page = await task.allocate(kernel.pageSize);
  const bytes = await task.view(page, kernel.pageSize);
  return { task, page, words: new Int32Array(bytes.buffer, bytes.byteOffset, 4) };
}

describe('threads: spawn and join', () => {
  it('runs an entry with (context, ...args) on its task node and joins its result', async () => {
    const { task } = await taskWithPage();
    const thread = await task.spawn(basic, 'add', 2, 3);
    expect(thread).toBeInstanceOf(Thread);
    expect(await thread.join()).toBe(5);
    const who = await (await task.spawn(basic, 'whoAmI')).join() as { node: number; task: number; thread: number };
    expect(who).toMatchObject({ node: 1, task: task.id });
    expect(typeof who.thread).toBe('number');
  });

  it('rejects a join with KERN_FAILURE carrying the error when the code throws and no handler takes it', async () => {
    const { task } = await taskWithPage();
    // With no exception handler each failure terminates its task (test/exceptions.test.ts).
    const spare = [await task.create(), await task.create()];
    const fresh = async () => spare.shift()!;
    const error = await rejection((await task.spawn(basic, 'boom')).join());
    expect(error.kr).toBe(KERN_FAILURE);
    expect(error.message).toContain('boom in a thread');
    expect(error.cause).toMatchObject({ name: 'RangeError', message: 'boom in a thread' });
    expect((error.cause as { stack?: string }).stack).toContain('boom');
    const unclonable = await rejection((await (await fresh()).spawn(basic, 'returnsFunction')).join());
    expect(unclonable.kr).toBe(KERN_FAILURE);
    expect(unclonable.message).toContain('function handler at .handler');
    expect(await (await (await fresh()).spawn(basic, 'add', 1, 1)).join()).toBe(2); // the node lives on
  });
});

describe('threads: kernel.mach', () => {
  it('thread_create makes a suspended thread with no state; set_state and resume run it', async () => {
    const { task } = await taskWithPage();
    const mach = task.kernel.mach;
    const { kr, child_act } = await mach.thread_create(task);
    expect(kr).toBe(KERN_SUCCESS);
    expect(await mach.thread_info(child_act!, THREAD_BASIC_INFO)).toEqual(
      { kr: KERN_SUCCESS, thread_info: { run_state: TH_STATE_STOPPED, suspend_count: 1 } });
    expect(await mach.thread_get_state(child_act!, NORMA_THREAD_STATE_JS)).toEqual({ kr: KERN_SUCCESS });
    expect((await mach.task_threads(task)).act_count).toBe(1);
    expect(await mach.thread_suspend(child_act!)).toBe(KERN_SUCCESS);
    expect(await mach.thread_resume(child_act!)).toBe(KERN_SUCCESS);
    const state = { module: basic.href, entry: 'add', args: [40, 2] };
    expect(await mach.thread_set_state(child_act!, NORMA_THREAD_STATE_JS, state)).toBe(KERN_SUCCESS);
    expect(await mach.thread_get_state(child_act!, NORMA_THREAD_STATE_JS)).toEqual({ kr: KERN_SUCCESS, old_state: state });
    expect(await mach.thread_resume(child_act!)).toBe(KERN_SUCCESS);
    expect(await child_act!.join()).toBe(42);
    expect((await mach.thread_info(child_act!, THREAD_BASIC_INFO)).thread_info?.run_state).toBe(TH_STATE_HALTED);
    expect(await mach.thread_resume(child_act!)).toBe(KERN_TERMINATED);
    expect((await mach.task_threads(task)).act_count).toBe(0);
  });

  it('thread_create_running runs at once; thread_resume at count 0 is KERN_FAILURE; bad handles and flavors are refused', async () => {
    const { task } = await taskWithPage();
    const mach = task.kernel.mach;
    const { kr, child_act } = await mach.thread_create_running(task, NORMA_THREAD_STATE_JS,
      { module: basic.href, entry: 'waitOn', args: [await task.allocate(task.kernel.pageSize)] });
    expect(kr).toBe(KERN_SUCCESS);
    expect(await mach.thread_resume(child_act!)).toBe(KERN_FAILURE);
    expect((await mach.thread_info(child_act!, THREAD_BASIC_INFO)).thread_info?.suspend_count).toBe(0);
    expect((await mach.thread_info(child_act!, 99)).kr).toBe(KERN_INVALID_ARGUMENT);
    expect((await mach.thread_get_state(child_act!, 1)).kr).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.thread_suspend(task as never)).toBe(KERN_INVALID_ARGUMENT);
    expect((await mach.thread_create({} as never)).kr).toBe(KERN_INVALID_ARGUMENT);
    const listed = await mach.task_threads(task);
    expect(listed.act_list.map((act) => act.id)).toEqual([child_act!.id]);
    expect(await mach.thread_terminate(child_act!)).toBe(KERN_SUCCESS);
    expect(await mach.thread_terminate(child_act!)).toBe(KERN_TERMINATED);
    expect((await rejection(child_act!.join())).kr).toBe(KERN_TERMINATED);
  });
});

describe('threads: suspension, abort and termination take effect at the call gate', () => {
  it('thread_suspend stops a thread at its next yield until thread_resume', async () => {
    const { task, page, words } = await taskWithPage();
    const thread = await task.spawn(basic, 'spin', page);
    await until(async () => Atomics.load(words, 0) > 3);
    await thread.suspend();
    const stopped = Atomics.load(words, 0);
    for (let i = 0; i < 20; i++) await task.info(); // the node turns its loop; the thread does not run
    expect(Atomics.load(words, 0)).toBe(stopped);
    expect(await thread.info()).toMatchObject({ suspendCount: 1, runState: TH_STATE_STOPPED });
    await thread.resume();
    await until(async () => Atomics.load(words, 0) > stopped);
    expect((await rejection(thread.resume())).kr).toBe(KERN_FAILURE);
    await thread.terminate();
    expect((await rejection(thread.join())).kr).toBe(KERN_TERMINATED);
    const ended = Atomics.load(words, 0);
    for (let i = 0; i < 20; i++) await task.info();
    expect(Atomics.load(words, 0)).toBe(ended);
    expect((await thread.info()).runState).toBe(TH_STATE_HALTED);
  });

  it('task_suspend stops every thread of the task until task_resume; task_info counts them', async () => {
    const { task, page, words } = await taskWithPage();
    const threads = [await task.spawn(basic, 'spin', page), await task.spawn(basic, 'spin', page)];
    expect((await task.info()).threadCount).toBe(2);
    await until(async () => Atomics.load(words, 0) > 5);
    await task.suspend();
    const stopped = Atomics.load(words, 0);
    for (let i = 0; i < 20; i++) await task.info();
    expect(Atomics.load(words, 0)).toBe(stopped);
    expect((await threads[0]!.info()).runState).toBe(TH_STATE_STOPPED);
    await task.resume();
    await until(async () => Atomics.load(words, 0) > stopped + 2);
    expect((await threads[1]!.info()).suspendCount).toBe(0);
  });

  it('thread_abort ends a blocked receive (MACH_RCV_INTERRUPTED) and send (MACH_SEND_INTERRUPTED); no message is lost', async () => {
    const { task } = await taskWithPage();
    const port = await task.allocatePort();
    const receiver = await task.spawn(basic, 'receiveOn', port);
    await until(async () => (await receiver.info()).runState === TH_STATE_WAITING);
    await receiver.abort();
    expect(await receiver.join()).toBe(MACH_RCV_INTERRUPTED);
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 5 });
    expect((await task.receive(port, { timeout: 0 })).id).toBe(5);

    const sender = await task.spawn(basic, 'sendUntilBlocked', port);
    await until(async () => (await sender.info()).runState === TH_STATE_WAITING);
    await sender.abort();
    expect(await sender.join()).toBe(MACH_SEND_INTERRUPTED);
    expect((await task.kernel.mach.mach_port_get_attributes(task, port, 2)).port_info).toMatchObject({ mps_msgcount: 5 });
  });

  it('wait() answers ok when notified and interrupted when aborted, never blocking the node', async () => {
    const { task, page, words } = await taskWithPage();
    const waiter = await task.spawn(basic, 'waitOn', page);
    await until(async () => (await waiter.info()).runState === TH_STATE_WAITING);
    await waiter.abort();
    expect(await waiter.join()).toBe('interrupted');
    const woken = await task.spawn(basic, 'waitOn', page);
    await until(async () => (await woken.info()).runState === TH_STATE_WAITING);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    expect(await woken.join()).toBe('ok');
  });

  it('thread_terminate ends a receive at once; task_terminate ends every thread and forgets them', async () => {
    const { task, page } = await taskWithPage();
    const port = await task.allocatePort();
    const receiver = await task.spawn(basic, 'receiveOn', port);
    await until(async () => (await receiver.info()).runState === TH_STATE_WAITING);
    await receiver.terminate();
    expect((await rejection(receiver.join())).kr).toBe(KERN_TERMINATED);
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 9 });
    expect((await task.receive(port, { timeout: 0 })).id).toBe(9); // the terminated receiver took nothing

    const waiting = [await task.spawn(basic, 'waitOn', page), await task.spawn(basic, 'receiveOn', port)];
    await until(async () => (await waiting[1]!.info()).runState === TH_STATE_WAITING);
    await task.terminate();
    for (const thread of waiting) expect((await rejection(thread.join())).kr).toBe(KERN_TERMINATED);
    // A thread handle of a dead task: refused, naming nothing changed.
    expect((await rejection(waiting[0]!.suspend())).kr).toBe(KERN_INVALID_ARGUMENT);
    expect(await task.kernel.mach.thread_abort(waiting[0]!)).toBe(KERN_INVALID_ARGUMENT);
  });
});

describe('threads: calls from inside a thread', () => {
  it('take thread port names in the task space (mach_thread_self, thread_create, set/get_state, task_threads, ...)', async () => {
    const { task, page } = await taskWithPage();
    const result = await (await task.spawn(basic, 'selfCalls', page)).join();
    expect(result).toEqual({
      self: KERN_SUCCESS, ownState: TH_STATE_RUNNING, childSuspendCount: 1, badFlavor: KERN_INVALID_ARGUMENT,
      set: KERN_SUCCESS, state: { module: basic.href, entry: 'add', args: [20, 22] }, listed: 2,
      suspended: KERN_SUCCESS, resumed: KERN_SUCCESS, resumedAgain: KERN_SUCCESS, aborted: KERN_SUCCESS,
      terminated: KERN_SUCCESS, afterTerminate: MACH_SEND_INVALID_DEST, notAThread: MACH_SEND_INVALID_DEST,
    });
  });
});

describe('threads: abortable waits (clock.ts Deadline)', () => {
  it('an abort signal ends every wait of a call at once, marked aborted, not timed out', async () => {
    const controller = new AbortController();
    const deadline = new Deadline(systemClock, Infinity, controller.signal);
    const raced = deadline.race(new Promise<string>(() => {}), 'ended');
    let expired = false;
    deadline.onExpiry(() => { expired = true; });
    expect(deadline.expired).toBe(false);
    controller.abort();
    expect(await raced).toBe('ended');
    expect({ expired, aborted: deadline.aborted, over: deadline.expired }).toEqual({ expired: true, aborted: true, over: true });
    const late = new Deadline(systemClock, 60_000, controller.signal);
    expect({ aborted: late.aborted, expired: late.expired }).toEqual({ aborted: true, expired: true });
    const timed = new Deadline(systemClock, 0);
    expect({ aborted: timed.aborted, expired: timed.expired }).toEqual({ aborted: false, expired: true });
  });
});

describe('threads: shared memory across nodes', () => {
  it('views take any typed-array type; misaligned ones are refused with KERN_INVALID_ARGUMENT', async () => {
    const { task, page } = await taskWithPage();
    expect(await (await task.spawn(basic, 'typedViews', page)).join()).toEqual({
      isFloat64: true, length: 2, same: 1.5, refused: [KERN_INVALID_ARGUMENT, KERN_INVALID_ARGUMENT], plain: true,
    });
  });

  /** A task on node 0 with `pages` shared pages, and its clone on node 1 sharing them. */
  async function twoNodes(pages: number) {
    const kernel = await bootKernel();
    const parent = await kernel.bootstrapTask.createOn(0);
    const size = pages * kernel.pageSize;
    const address = await parent.allocate(size);
    await parent.inherit(address, size, VM_INHERIT_SHARE);
    const child = await parent.clone(1);
    return { parent, child, address, size };
  }

  it('typed views, Atomics and the Barrier keep 4 threads on 2 nodes in step', async () => {
    const { parent, child, address } = await twoNodes(1);
    const parties = 4;
    const generations = 50;
    const threads = await Promise.all([parent, parent, child, child].map((task) =>
      task.spawn(basic, 'countRounds', address, parties, generations)));
    expect(await Promise.all(threads.map((thread) => thread.join()))).toEqual([0, 0, 0, 0]);
    const words = new Int32Array((await parent.read(address, 16)).buffer);
    expect(words[0]).toBe(parties * generations);
    expect(words[3]).toBe(2 * generations); // the barrier's generation
  });

  it('Game of Life split over two nodes equals the single-thread result', async () => {
    const size = 32;
    const generations = 24;
    const cells = size * size;
    let seed = 12345;
    const start = Int32Array.from({ length: cells }, () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) >> 16) & 1);
    const { parent, child, address } = await twoNodes(3);
    await parent.write(address, start);
    const barrierAt = address + 2 * cells * 4;
    const parties = 4;
    const rows = size / parties;
    const threads = await Promise.all([parent, parent, child, child].map((task, index) =>
      task.spawn(basic, 'lifeRows', address, barrierAt, size, index * rows, (index + 1) * rows, parties, generations)));
    expect(await Promise.all(threads.map((thread) => thread.join()))).toEqual([0, 0, 1, 1]);
    const result = new Int32Array((await parent.read(address + (generations % 2) * cells * 4, cells * 4)).buffer);
    expect([...result]).toEqual([...life(start, size, generations)]);
  });
});

describe('threads: a thread that holds its node', () => {
  it('shows in nodeActivity() and the NORMA_NODE_BUSY warning, by thread and task', async () => {
    const kernel = await bootKernel({ busyWarningMs: 50 });
    const task = await kernel.bootstrapTask.createOn(1);
    const gate = await task.allocate(kernel.pageSize);
    const bytes = await task.view(gate, 8);
    const words = new Int32Array(bytes.buffer, bytes.byteOffset, 2);
    const warned = new Promise<Error>((resolve) => {
      const listen = (warning: Error & { code?: string }) => {
        if (warning.code !== 'NORMA_NODE_BUSY') return;
        process.off('warning', listen);
        resolve(warning);
      };
      process.on('warning', listen);
    });
    // Spins after a kernel call it awaited settled: in a continuation, behind the call gate.
    const thread = await task.spawn(fixture('bad-busy.mjs'), 'spinAfterReceive', gate);
    const entered = Atomics.waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    expect(kernel.nodeActivity()[1]).toMatchObject({ node: 1, task: task.id, thread: thread.id });
    const waiting = task.info();
    expect((await warned).message).toContain(`node 1 has run code of thread ${thread.id} of task ${task.id}`);
    Atomics.store(words, 0, 1);
    expect(await thread.join()).toMatchObject({ node: 1, stopped: true });
    expect((await waiting).threadCount).toBe(0);
  });
});

describe('threads: bad input changes nothing', () => {
  it('answers missing modules and exports, non-functions, uncloneable arguments and bad flavors with codes naming the cause', async () => {
    const { task } = await taskWithPage();
    const mach = task.kernel.mach;
    const missing = await rejection(task.spawn('/no/such/module.mjs', 'main'));
    expect(missing.kr).toBe(KERN_INVALID_ARGUMENT);
    expect(missing.message).toContain('/no/such/module.mjs');
    const noExport = await rejection(task.spawn(basic, 'absent'));
    expect(noExport.kr).toBe(KERN_INVALID_ARGUMENT);
    expect(noExport.message).toContain("no export 'absent'");
    const notFunction = await rejection(task.spawn(basic, 'notAFunction'));
    expect(notFunction.kr).toBe(KERN_INVALID_ARGUMENT);
    expect(notFunction.message).toContain("export 'notAFunction'");
    const uncloneable = await rejection(task.spawn(basic, 'add', () => 1));
    expect(uncloneable.kr).toBe(KERN_INVALID_ARGUMENT);
    expect(uncloneable.message).toContain('cloned');
    expect((await mach.thread_create_running(task, 1, { module: basic.href, entry: 'add', args: [] })).kr)
      .toBe(KERN_INVALID_ARGUMENT);
    expect((await mach.thread_create_running(task, NORMA_THREAD_STATE_JS, { module: basic.href } as never)).kr)
      .toBe(KERN_INVALID_ARGUMENT);
    expect(await task.threads()).toEqual([]);
    expect((await task.info()).threadCount).toBe(0);

    const { child_act } = await mach.thread_create(task);
    expect(await mach.thread_set_state(child_act!, NORMA_THREAD_STATE_JS, { module: basic.href, entry: 'absent', args: [] }))
      .toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.thread_set_state(child_act!, 7, { module: basic.href, entry: 'add', args: [] })).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.thread_get_state(child_act!, NORMA_THREAD_STATE_JS)).toEqual({ kr: KERN_SUCCESS });
    expect((await child_act!.info()).suspendCount).toBe(1);
  });
});

/** The single-thread reference: `generations` of Life on a `size` torus. */
function life(start: Int32Array, size: number, generations: number): Int32Array {
  let current = Int32Array.from(start);
  for (let generation = 0; generation < generations; generation++) {
    const next = new Int32Array(current.length);
    for (let row = 0; row < size; row++) {
      for (let column = 0; column < size; column++) {
        let alive = 0;
        for (let dr = -1; dr <= 1; dr++) {
          for (let dc = -1; dc <= 1; dc++) {
            if (dr !== 0 || dc !== 0) alive += current[((row + dr + size) % size) * size + ((column + dc + size) % size)]!;
          }
        }
        next[row * size + column] = alive === 3 || (current[row * size + column] === 1 && alive === 2) ? 1 : 0;
      }
    }
    current = next;
  }
  return current;
}

describe('threads: a node stays fair to its event loop', () => {
  it('a thread whose every mach_msg completes at once still lets host calls to its node through', async () => {
    const { task, words } = await taskWithPage(0);
    const thread = await task.spawn(basic, 'selfMessages', (await task.regions())[0]!.address);
    // Without a timeslice at the call gate these calls would wait for ever behind the thread.
    expect((await task.info()).suspendCount).toBe(0);
    expect(await task.kernel.mach.thread_info(thread, THREAD_BASIC_INFO)).toMatchObject({ kr: KERN_SUCCESS });
    Atomics.store(words, 0, 1);
    expect(await thread.join()).toBeGreaterThan(0);
  });
});
