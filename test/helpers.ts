/**
 * Shared test helpers: a kernel per test, shut down after it, and snapshots of task state for
 * "a rejected call changes nothing" checks.
 */
import { afterEach } from 'vitest';
import {
  Kernel, VM_INHERIT_NONE, VM_INHERIT_SHARE, type BootOptions, type RegionInfo, type Task,
} from 'norma-rt';

const booted: Kernel[] = [];

afterEach(async () => {
  await Promise.all(booted.splice(0).map((kernel) => kernel.shutdown()));
});

/** Boots a kernel that is shut down after the current test. Two nodes unless told otherwise. */
export async function bootKernel(options: BootOptions = {}): Promise<Kernel> {
  const kernel = await Kernel.boot({ nodes: 2, ...options });
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
