/**
 * `norma demo`: the four task-creation calls, parent and child maps printed side by side.
 */
import { Kernel } from '../kernel.js';
import { inheritanceName, type Task } from '../task.js';
import { VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE } from '../shared/constants.js';
import type { RegionInfo } from '../shared/protocol.js';

const hex = (value: number) => `0x${value.toString(16)}`;

function describeRegion(region: RegionInfo | undefined): string {
  if (region === undefined) return '';
  const memory = region.shared ? `shared ${region.object}` : `private ${region.object}`;
  return `${hex(region.address).padEnd(8)} ${hex(region.size).padEnd(7)} ${inheritanceName(region.inheritance).padEnd(6)} ${memory}`;
}

/** Prints both maps while the child lives, then terminates the child so the next call starts alike. */
async function printSideBySide(title: string, parent: Task, child: Task, parentBefore?: RegionInfo[]): Promise<void> {
  const parentAlive = parentBefore === undefined;
  const left = parentBefore ?? await parent.regions();
  const right = await child.regions();
  if (parentAlive) await child.terminate();
  const width = 52;
  console.log(`\n== ${title}`);
  const parentLabel = parentAlive ? `parent: ${parent}` : `parent: ${parent} (before; now terminated)`;
  console.log(`${parentLabel.padEnd(width)} | child: ${child}`);
  const header = `${'address'.padEnd(8)} ${'size'.padEnd(7)} ${'inh'.padEnd(6)} memory`;
  console.log(`${header.padEnd(width)} | ${header}`);
  for (let row = 0; row < Math.max(left.length, right.length, 1); row++) {
    const l = describeRegion(left[row]) || (row === 0 && left.length === 0 ? '(no regions)' : '');
    const r = describeRegion(right[row]) || (row === 0 && right.length === 0 ? '(no regions)' : '');
    console.log(`${l.padEnd(width)} | ${r}`);
  }
}

/** A parent with one region of each inheritance (share, copy, none), each its own memory object. */
async function makeParent(kernel: Kernel): Promise<Task> {
  const parent = await kernel.bootstrapTask.create({ inheritMemory: false });
  for (const inheritance of [VM_INHERIT_SHARE, VM_INHERIT_COPY, VM_INHERIT_NONE]) {
    const address = await parent.allocate(kernel.pageSize);
    await parent.inherit(address, kernel.pageSize, inheritance);
  }
  return parent;
}

export async function demo(nodes: number): Promise<void> {
  const kernel = await Kernel.boot({ nodes });
  try {
    const remote = nodes > 1 ? 1 : 0;
    console.log(`norma demo: ${nodes} node(s), page size ${kernel.pageSize}; the parent has one region per inheritance.`);
    console.log('memory: shared = another task maps the same memory object (home node:slot), private = only this task');
    const parent = await makeParent(kernel);
    await printSideBySide('task_create(parent, NULL, 0, TRUE): same node, by inheritance',
      parent, await parent.create());
    await printSideBySide(`norma_task_create(parent, TRUE, ${remote}): node ${remote}, by inheritance`,
      parent, await parent.createOn(remote));
    await printSideBySide(`norma_task_clone(parent, TRUE, ${remote}): node ${remote}, everything shared`,
      parent, await parent.clone(remote));
    const before = await parent.regions();
    await printSideBySide(`norma_task_teleport(parent, TRUE, ${remote}): node ${remote}, parent terminated`,
      parent, await parent.teleport(remote), before);
  } finally {
    await kernel.shutdown();
  }
}
