#!/usr/bin/env node
/**
 * The `norma` command: `demo` prints parent and child maps side by side for each task-creation
 * call; `stress` runs an Atomics counter on memory shared by clones across every node.
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { Kernel } from '../kernel.js';
import { inheritanceName, type Task } from '../task.js';
import {
  VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from '../shared/constants.js';
import type { RegionInfo } from '../shared/protocol.js';

const USAGE = `usage: norma <command> [options]

commands:
  demo     the four task-creation calls, parent and child maps side by side
  stress   clones on every node bump one shared Atomics counter; checks the exact total

options:
  --nodes N        nodes to boot (default: demo 2, stress os.availableParallelism())
  --iterations N   stress: increments per task (default 1000000)
  --tasks N        stress: tasks per node (default 1)
  -h, --help       this text`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      iterations: { type: 'string' },
      tasks: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const count = (value: string | undefined, fallback: number, name: string) => {
    const parsed = value === undefined ? fallback : Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 1) throw new RangeError(`--${name} must be a positive integer`);
    return parsed;
  };
  switch (command) {
    case 'demo':
      await demo(count(values.nodes, 2, 'nodes'));
      return 0;
    case 'stress':
      return stress(count(values.nodes, availableParallelism(), 'nodes'),
        count(values.tasks, 1, 'tasks'), count(values.iterations, 1_000_000, 'iterations'));
    default:
      console.error(`norma: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

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

async function demo(nodes: number): Promise<void> {
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

async function stress(nodes: number, tasksPerNode: number, iterations: number): Promise<number> {
  const kernel = await Kernel.boot({ nodes });
  try {
    const root = kernel.bootstrapTask;
    const address = await root.allocate(kernel.pageSize);
    const tasks: Task[] = [];
    for (let node = 0; node < nodes; node++) {
      for (let i = 0; i < tasksPerNode; i++) tasks.push(await root.clone(node));
    }
    const workload = new URL('./workloads/counter.js', import.meta.url);
    console.error(`norma stress: ${tasks.length} task(s) on ${nodes} node(s), ${iterations} increments each`);
    const started = performance.now();
    let done = 0;
    const results = await Promise.all(tasks.map(async (task) => {
      const result = await task.execute(workload, 'bump', address, iterations) as { node: number; elapsedMs: number };
      console.error(`  task ${task.id} on node ${result.node}: ${result.elapsedMs.toFixed(1)} ms (${++done}/${tasks.length})`);
      return result;
    }));
    const elapsed = performance.now() - started;
    const view = await root.view(address, 4);
    const total = new Int32Array(view.buffer, view.byteOffset, 1)[0]!;
    const expected = tasks.length * iterations;
    console.log(`total ${total} (expected ${expected}) in ${elapsed.toFixed(1)} ms: ` +
      `${(expected / elapsed / 1000).toFixed(2)} M increments/s across ${new Set(results.map((r) => r.node)).size} node(s)`);
    return total === expected ? 0 : 1;
  } finally {
    await kernel.shutdown();
  }
}

// A reader that stops early (`norma demo | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (error: unknown) => {
  console.error(`norma: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
