/**
 * Shared test helpers: a kernel per test, shut down after it, and snapshots of task state for
 * "a rejected call changes nothing" checks.
 */
import { afterEach, assert, expect, inject, it } from 'vitest';
import {
  Kernel, KERN_SUCCESS, krName, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_PORT_SET, MACH_PORT_RIGHT_RECEIVE,
  MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_SEND_ONCE, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE, type BootOptions,
  type RegionInfo, type Task,
} from 'norma-rt';
import { poolName } from './cluster/global-setup.js';

const booted: Kernel[] = [];

afterEach(async () => {
  await Promise.all(booted.splice(0).map((kernel) => kernel.shutdown()));
});

/**
 * In the cluster pass (vitest.config.ts), the nats-server and `norma node` pool to split kernels over.
 * The project provides it; outside that pass there is nothing to inject.
 */
const cluster = (() => { try { return inject('normaCluster'); } catch { return undefined; } })();

/** True in the cluster pass: a kernel of two nodes or more runs its second half in another process. */
export const crossProcess = cluster !== undefined;

/**
 * `it` for a test of what only one process can give (a raw view or Atomics on memory another
 * node maps, pager internals, a queue limit exact to the message): in the cluster pass the test
 * is skipped, with `why` in its name, so the report says what does not hold across processes.
 */
export function itInOneProcess(why: string): (name: string, fn: () => Promise<void> | void, timeout?: number) => void {
  return crossProcess
    ? (name, fn, timeout) => it.skip(`${name} [one process only: ${why}]`, fn, timeout)
    : (name, fn, timeout) => it(name, fn, timeout);
}

/**
 * Boots a kernel that is shut down after the current test. Two nodes unless told otherwise. In
 * the cluster pass, a kernel of two nodes or more hosts its second half in a `norma node` process.
 */
export async function bootKernel(options: BootOptions = {}): Promise<Kernel> {
  const nodes = options.nodes ?? 2;
  const split = cluster !== undefined && nodes >= 2 && options.cluster === undefined
    ? { cluster: { nats: cluster.nats, name: poolName(cluster.name, process.env['VITEST_POOL_ID']), user: cluster.user, pass: cluster.pass, join: 1 } } : {};
  const kernel = await Kernel.boot({ nodes: 2, ...options, ...split });
  booted.push(kernel);
  return kernel;
}

/** Everything observable about a task's address space: regions, then every byte of each. */
export async function snapshot(task: Task): Promise<{ regions: RegionInfo[]; bytes: number[][] }> {
  const regions = await task.regions();
  const bytes: number[][] = [];
  for (const region of regions) {
    const reply = await task.kernel.mach.vm_read(task, region.address, region.size);
    bytes.push(reply.data === undefined ? [] : [...reply.data]);
  }
  return { regions, bytes };
}

/** The URL of a fixture module, loadable by node workers. */
export function fixture(name: string): URL {
  return new URL(`./fixtures/${name}`, import.meta.url);
}

/** A parent on `node` with one page of each inheritance, filled with 0x11 (share), 0x22 (copy), 0x33 (none). */
export async function threeRegionParent(kernel: Kernel, node = 0) {
  const page = kernel.pageSize;
  const parent = await kernel.bootstrapTask.createOn(node);
  const share = await parent.allocate(page);
  const copy = await parent.allocate(page);
  const none = await parent.allocate(page);
  await parent.inherit(share, page, VM_INHERIT_SHARE);
  await parent.inherit(none, page, VM_INHERIT_NONE);
  await parent.write(share, new Uint8Array(page).fill(0x11));
  await parent.write(copy, new Uint8Array(page).fill(0x22));
  await parent.write(none, new Uint8Array(page).fill(0x33));
  return { parent, page, share, copy, none };
}

/** The byte at `address` of `task`, by vm_read. */
export async function byteAt(task: Task, address: number): Promise<number> {
  return (await task.read(address, 1))[0]!;
}

/**
 * A 4-page region whose middle two pages are VM_INHERIT_SHARE, passed to a child made by
 * `create`: the child gets copy, share, copy pieces, the shared one at its offset in the same
 * object, with every page's contents, and writes reach the parent only through the shared piece.
 */
export async function expectSplitRegionPassedPieceByPiece(kernel: Kernel, create: (parent: Task) => Promise<Task>): Promise<void> {
  const page = kernel.pageSize;
  const parent = await kernel.bootstrapTask.create();
  const base = await parent.allocate(4 * page);
  for (let index = 0; index < 4; index++) await parent.write(base + index * page, new Uint8Array(page).fill(index + 1));
  await parent.inherit(base + page, 2 * page, VM_INHERIT_SHARE);
  const object = (await parent.region(base)).object;
  const child = await create(parent);

  const regions = await child.regions();
  expect(regions.map(({ address, size, inheritance, offset }) => ({ address, size, inheritance, offset }))).toEqual([
    { address: base, size: page, inheritance: VM_INHERIT_COPY, offset: 0 },
    { address: base + page, size: 2 * page, inheritance: VM_INHERIT_SHARE, offset: page },
    { address: base + 3 * page, size: page, inheritance: VM_INHERIT_COPY, offset: 0 },
  ]);
  expect(regions.map((region) => region.object === object)).toEqual([false, true, false]);
  for (let index = 0; index < 4; index++) {
    expect(await child.read(base + index * page, page)).toEqual(new Uint8Array(page).fill(index + 1));
  }
  await child.write(base + 2 * page, Uint8Array.of(0xee));
  expect(await byteAt(parent, base + 2 * page)).toBe(0xee);
  await child.write(base + 3 * page, Uint8Array.of(0xdd));
  expect(await byteAt(parent, base + 3 * page)).toBe(4);
}

/** One of the three norma_task_* calls through one face: child of `parent` on `node`. */
export type NormaCreate = (kernel: Kernel, parent: Task, inheritMemory: boolean, node: number) => Promise<Task>;

const NORMA_METHODS = { norma_task_create: 'createOn', norma_task_clone: 'clone', norma_task_teleport: 'teleport' } as const;

/** A norma_task_* call through both faces, for describe.each: the Task method and kernel.mach. */
export function normaFaces(call: keyof typeof NORMA_METHODS): Array<[string, NormaCreate]> {
  const method = NORMA_METHODS[call];
  return [
    [`Task.${method}`, (_kernel, parent, inheritMemory, node) => parent[method](node, { inheritMemory })],
    [`mach.${call}`, async (kernel, parent, inheritMemory, node) => {
      const reply = await kernel.mach[call](parent, inheritMemory, node);
      expect(reply.kr).toBe(KERN_SUCCESS);
      assert(reply.child_task !== undefined, `${call} returned no child_task`);
      return reply.child_task;
    }],
  ];
}

/** Rejects with a KernError carrying `kr`, by number and by name. */
export async function rejectsWith(promise: Promise<unknown>, kr: number): Promise<void> {
  await expect(promise).rejects.toMatchObject({ name: 'KernError', code: krName(kr), kr });
}

const RIGHTS = [
  MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND_ONCE, MACH_PORT_RIGHT_PORT_SET,
  MACH_PORT_RIGHT_DEAD_NAME,
];

/** Names, types and every right's urefs: what a rejected call must leave as it was. */
export async function spaceState(task: Task) {
  const { names, types } = await task.portNames();
  const refs: number[][] = [];
  for (const name of names) refs.push(await Promise.all(RIGHTS.map((right) => task.getRefs(name, right))));
  return { names, types, refs };
}
