/**
 * `norma demo`: the four task-creation calls, parent and child maps printed side by side.
 */
import { parseArgs } from 'node:util';
import { Kernel } from '../kernel.js';
import { MAX_NODES } from '../shared/types.js';
import { integerOption, parseCommand } from './args.js';
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

export const DEMO_USAGE = `usage: norma demo [--nodes N]

Creates a parent task with one region of each inheritance (share, copy, none) and prints its map
beside its child's for each of the four creation calls: task_create (same node),
norma_task_create and norma_task_clone (on node 1), norma_task_teleport (the parent is gone).

options:
  --nodes N    nodes to boot, 1 to ${MAX_NODES} (default 2; the child goes to node 1 when there is one)
  -h, --help   this text`;

/** `norma demo [options]`: returns the exit status. */
export async function demoCommand(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseCommand(() => parseArgs({
    args: [...args], allowPositionals: true, options: { nodes: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  }));
  if (values.help) {
    console.log(DEMO_USAGE);
    return 0;
  }
  if (positionals.length > 0) {
    console.error(`norma demo: unexpected argument '${positionals[0]}'\n\n${DEMO_USAGE}`);
    return 2;
  }
  await demo(integerOption(values.nodes, 'nodes', 2, 1, MAX_NODES));
  return 0;
}
