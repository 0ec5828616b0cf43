/**
 * Shared test helpers: a kernel per test, shut down after it, and snapshots of task state for
 * "a rejected call changes nothing" checks.
 */
import { afterEach } from 'vitest';
import { Kernel, type BootOptions, type RegionInfo, type Task } from 'norma-rt';

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
