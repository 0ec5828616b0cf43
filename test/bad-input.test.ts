/**
 * Issue 7 item 3: no input kills a node or hangs a call. Task code returning or throwing what
 * cannot be cloned fails that call and leaves the node serving; a bad module, export or path
 * fails with a message naming it; a node held by task code is reported, not waited on in silence.
 */
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Kernel, KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_SUCCESS, krName, type Task,
} from 'norma-rt';
import { uncloneableReply } from '../src/actors/kern/task-code.js';
import { bootKernel, fixture, snapshot } from './helpers.js';

const VALUES = fixture('bad-values.mjs');
const BUSY = fixture('bad-busy.mjs');

async function failure(promise: Promise<unknown>, kr: number): Promise<Error & { cause?: unknown }> {
  const error = await promise.then(() => undefined, (reason: unknown) => reason);
  expect(error).toMatchObject({ name: 'KernError', code: krName(kr), kr });
  return error as Error;
}

/** A task on node 1 with a page written, and a sibling there: what a node crash would lose. */
async function tasksOnNode1(kernel: Kernel) {
  const task = await kernel.bootstrapTask.createOn(1);
  const sibling = await kernel.bootstrapTask.createOn(1);
  const page = await sibling.allocate(kernel.pageSize);
  await sibling.write(page, Uint8Array.of(7, 8, 9));
  return { task, sibling, page };
}

/** The node still serves: the same task runs code, and the sibling's memory is intact. */
async function expectServing(task: Task, sibling: Task, page: number): Promise<void> {
  expect(await task.execute(VALUES, 'answer', 5)).toEqual({ node: 1, task: task.id, value: 5 });
  expect(await sibling.read(page, 3)).toEqual(Uint8Array.of(7, 8, 9));
  expect(await sibling.execute(VALUES, 'answer', 6)).toEqual({ node: 1, task: sibling.id, value: 6 });
}

describe('task code output that cannot be cloned', () => {
  it('a return value that cannot be cloned fails that call with KERN_FAILURE naming what and where, and the node keeps serving', async () => {
    const kernel = await bootKernel();
    const { task, sibling, page } = await tasksOnNode1(kernel);
    const before = await snapshot(sibling);
    const cases: Array<[string, string]> = [
      ['returnFunction', 'function handler'],
      ['returnSymbol', 'Symbol(tag)'],
      ['returnNested', 'function handler at .deep.list[1].handler'],
      ['returnFunctionLater', 'function handler at .later'],
    ];
    for (const [name, what] of cases) {
      const error = await failure(task.execute(VALUES, name), KERN_FAILURE);
      expect(error.message).toBe(`KERN_FAILURE: execute ${name}: task code's return value cannot be cloned: ${what}`);
      expect(error.cause).toMatchObject({ name: 'DataCloneError' });
    }
    await expectServing(task, sibling, page);
    expect(await snapshot(sibling)).toEqual(before);
    expect((await kernel.pagerInfo()).map((info) => info.down)).toEqual([undefined, undefined]);
  });

  it('a thrown value of any kind fails that call with KERN_FAILURE describing it, and the node keeps serving', async () => {
    const kernel = await bootKernel();
    const { task, sibling, page } = await tasksOnNode1(kernel);
    const cases: Array<[string, string]> = [
      ['throwSymbol', 'task code threw Symbol(boom)'],
      ['throwFunction', 'task code threw function handler'],
      ['throwNullPrototype', 'task code threw an object'],
      ['throwUnnamable', 'unnamable'],
    ];
    for (const [name, message] of cases) {
      const error = await failure(task.execute(VALUES, name), KERN_FAILURE);
      expect(error.message).toBe(`KERN_FAILURE: execute ${name}: ${message}`);
      expect(error.cause).toMatchObject({ name: 'Error', message });
    }
    await expectServing(task, sibling, page);
  });

  it('a reply that cannot be cloned, to the host or to a peer node, becomes KERN_FAILURE naming the routine', () => {
    const refused = new DOMException('could not be cloned', 'DataCloneError');
    expect(uncloneableReply('vmRead', { kr: KERN_SUCCESS, data: { read: () => 1 } }, refused)).toEqual({
      kr: KERN_FAILURE, error: { name: 'DataCloneError', message: 'the reply of vmRead cannot be cloned: function read at .data.read' },
    });
    const looped: Record<string, unknown> = {};
    looped.self = looped;
    expect(uncloneableReply('taskExecute', { kr: KERN_SUCCESS, value: { looped, map: new Map([[1, Symbol.iterator]]) } }, refused))
      .toMatchObject({ error: { message: "task code's return value cannot be cloned: Symbol(Symbol.iterator) at .map.get(1)" } });
    // Nothing found to name: the clone's own message, shortened.
    expect(uncloneableReply('taskExecute', { kr: KERN_SUCCESS, value: {} }, refused))
      .toMatchObject({ kr: KERN_FAILURE, error: { message: "task code's return value cannot be cloned: could not be cloned" } });
  });
});

describe('modules, exports and paths that cannot be run', () => {
  it('rejects with KERN_INVALID_ARGUMENT naming the module and export for a missing module, a missing or non-function export, and changes nothing', async () => {
    const kernel = await bootKernel();
    const { task, sibling, page } = await tasksOnNode1(kernel);
    const before = await snapshot(task);
    const missing = new URL('./no-such-module.mjs', VALUES).href;
    const cases: Array<[string | URL, string, string]> = [
      [missing, 'run', `cannot find module '${missing}' (ERR_MODULE_NOT_FOUND)`],
      [VALUES, 'noSuchExport', `module '${VALUES.href}' has no export 'noSuchExport'`],
      [VALUES, 'notAFunction', `export 'notAFunction' of module '${VALUES.href}' is 42, not a function`],
      ['no-such-package-norma', 'run', "cannot find module 'no-such-package-norma' (ERR_MODULE_NOT_FOUND)"],
    ];
    for (const [module, name, message] of cases) {
      const error = await failure(task.execute(module, name), KERN_INVALID_ARGUMENT);
      expect(error.message).toBe(`KERN_INVALID_ARGUMENT: execute ${name}: ${message}`);
      // Never a path inside this package, which the caller did not name.
      expect(error.message).not.toMatch(/dist\//);
    }
    await failure(task.execute(42 as unknown as string, 'run'), KERN_INVALID_ARGUMENT);
    await failure(task.execute(VALUES, 7 as unknown as string), KERN_INVALID_ARGUMENT);
    expect(await snapshot(task)).toEqual(before);
    await expectServing(task, sibling, page);
  });

  it('rejects with KERN_FAILURE naming the module when it throws while loading', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const module = fixture('bad-load.mjs');
    const error = await failure(task.execute(module, 'run'), KERN_FAILURE);
    expect(error.message).toBe(`KERN_FAILURE: execute run: module '${module.href}' failed to load: bad-load refuses to load`);
    expect(error.cause).toMatchObject({ name: 'RangeError' });
  });

  it('resolves a relative path against the caller\'s working directory, and an absolute path as a file', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const path = fileURLToPath(VALUES);
    const fromCwd = `./${relative(process.cwd(), path)}`;
    expect(await task.execute(fromCwd, 'answer', 1)).toEqual({ node: 1, task: task.id, value: 1 });
    expect(await task.execute(path, 'answer', 2)).toEqual({ node: 1, task: task.id, value: 2 });
    const missing = './test/fixtures/no-such-module.mjs';
    const error = await failure(task.execute(missing, 'run'), KERN_INVALID_ARGUMENT);
    expect(error.message).toContain(new URL(missing, `file://${process.cwd()}/`).href);
  });

  it('rejects with KERN_INVALID_ARGUMENT saying so when an argument cannot be cloned to the node', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const error = await failure(task.execute(VALUES, 'answer', () => 1), KERN_INVALID_ARGUMENT);
    expect(error.message).toBe('KERN_INVALID_ARGUMENT: execute answer: an argument cannot be cloned to a node');
    expect(await task.execute(VALUES, 'answer', 3)).toMatchObject({ value: 3 });
  });
});

describe('a node held by task code', () => {
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => {
    if ((warning as { code?: string }).code === 'NORMA_NODE_BUSY') warnings.push(warning);
  };
  afterEach(() => {
    process.off('warning', onWarning);
    warnings.length = 0;
  });

  /** The next NORMA_NODE_BUSY warning. */
  function nextWarning(): Promise<Error> {
    return new Promise((resolve) => {
      const seen = (warning: Error) => {
        if ((warning as { code?: string }).code !== 'NORMA_NODE_BUSY') return;
        process.off('warning', seen);
        resolve(warning);
      };
      process.on('warning', seen);
    });
  }

  /** A task on node 1 whose code spins until the host stores 1 in word 0 of `gate`. */
  async function spinning(kernel: Kernel, entry: 'spin' | 'spinAfterReceive') {
    const task = await kernel.bootstrapTask.createOn(1);
    const gate = await task.allocate(kernel.pageSize);
    const view = await task.view(gate, 8);
    const words = new Int32Array(view.buffer, view.byteOffset, 2);
    const result = task.execute(BUSY, entry, gate);
    const entered = Atomics.waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    return { task, gate, result, stop: () => Atomics.store(words, 0, 1) };
  }

  it('a call waiting on it past busyWarningMs gives one NORMA_NODE_BUSY warning naming node, task and time; nodeActivity() shows it; all recovers', async () => {
    process.on('warning', onWarning);
    const kernel = await bootKernel({ nodes: 2, busyWarningMs: 50 });
    const warned = nextWarning();
    const { task, gate, result, stop } = await spinning(kernel, 'spin');
    const waiting = task.read(gate, 4);
    const warning = await warned;
    expect(warning.message).toMatch(new RegExp(`^node 1 has run code of task ${task.id} for \\d+ ms without returning to its event loop; \\d+ call\\(s\\) wait on it`));
    const [idle, busy] = kernel.nodeActivity();
    expect(idle).toEqual({ node: 0, pending: 0 });
    expect(busy).toMatchObject({ node: 1, task: task.id, pending: 2 });
    expect(Date.now() - busy!.since!).toBeGreaterThanOrEqual(50);

    stop();
    expect(await result).toEqual({ node: 1, stopped: true, spun: true });
    expect(await waiting).toEqual(Uint8Array.of(1, 0, 0, 0));
    expect(kernel.nodeActivity()).toEqual([{ node: 0, pending: 0 }, { node: 1, pending: 0 }]);
    expect(warnings).toHaveLength(1);
    expect(await task.execute(VALUES, 'answer', 4)).toMatchObject({ node: 1, value: 4 });
  });

  it('names the task when its code spins in a continuation, after a kernel call it awaited settled', async () => {
    const kernel = await bootKernel({ nodes: 2, busyWarningMs: 50 });
    const warned = nextWarning();
    const { task, result, stop } = await spinning(kernel, 'spinAfterReceive');
    expect(kernel.nodeActivity()[1]).toMatchObject({ node: 1, task: task.id, pending: 1 });
    expect((await warned).message).toContain(`node 1 has run code of task ${task.id}`);
    stop();
    expect(await result).toMatchObject({ stopped: true });
    expect(await task.execute(VALUES, 'answer', 5)).toMatchObject({ value: 5 });
  });

  it('boot rejects a busyWarningMs that is not a positive number or Infinity with RangeError', async () => {
    for (const busyWarningMs of [0, -1, Number.NaN, '50' as unknown as number]) {
      await expect(Kernel.boot({ nodes: 1, busyWarningMs })).rejects.toThrow(RangeError);
    }
    const kernel = await bootKernel({ nodes: 1, busyWarningMs: Infinity });
    expect(kernel.nodeActivity()).toEqual([{ node: 0, pending: 0 }]);
  });
});
