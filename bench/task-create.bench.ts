/**
 * Task creation: task_create, norma_task_create and norma_task_clone of parents with 1, 100 and
 * 10,000 regions, beside a raw postMessage round trip; and COPY inheritance of 1 MiB to 256 MiB
 * beside a Uint8Array.set copy of the same size into a fresh SharedArrayBuffer. Only the creation
 * call is timed (overriddenDuration); terminating the child happens outside the timed window.
 * --quick keeps the 10,000-region task_create (an issue 10 target) and drops the 10,000-region
 * norma_* tasks and the 256 MiB copy.
 */
import { Kernel, VM_INHERIT_COPY, VM_INHERIT_SHARE, type Task } from 'norma-rt';
import { compare, type BenchTask, type SuiteOptions } from './harness.js';
import { postMessageEcho, sabCopy } from './peers.js';
import { progress, suiteResult, type ComparisonResult, type SuiteResult } from './report.js';
import { evaluateTargets, type TargetSpec } from './targets.js';

const MiB = 2 ** 20;

type Create = (parent: Task) => Promise<Task>;

/**
 * A kernel task: boots 2 nodes, builds the parent in `prepare`, times `create`, terminates the
 * child untimed. With `sibling`, a clone of the parent lives on node 1 throughout, so node 1
 * already holds the parent's memory (images then name the objects instead of carrying them).
 */
function creation(name: string, prepare: (kernel: Kernel) => Promise<Task>, create: Create, bytes?: number,
  sibling = false): BenchTask {
  let kernel: Kernel | undefined;
  let parent: Task | undefined;
  return {
    name,
    async: true,
    bytes,
    async start() {
      kernel = await Kernel.boot({ nodes: 2 });
      parent = await prepare(kernel);
      if (sibling) await parent.clone(1);
    },
    async fn() {
      const started = performance.now();
      const child = await create(parent!);
      const elapsed = performance.now() - started;
      await child.terminate();
      return { overriddenDuration: elapsed };
    },
    async stop() {
      await kernel?.shutdown();
      kernel = undefined;
    },
  };
}

/** A parent with `regions` separate one-page regions (one memory object each), all inherited SHARE. */
function parentWithRegions(regions: number) {
  return async (kernel: Kernel): Promise<Task> => {
    const parent = await kernel.bootstrapTask.create({ inheritMemory: false });
    for (let i = 0; i < regions; i++) {
      const address = await parent.allocate(kernel.pageSize);
      await parent.inherit(address, kernel.pageSize, VM_INHERIT_SHARE);
      if (regions >= 1000 && i % 2000 === 0) progress(`    building parent: ${i}/${regions} regions`);
    }
    return parent;
  };
}

/** A parent with one COPY region of `bytes`, every page touched so the copy moves real data. */
function parentWithCopyRegion(bytes: number) {
  return async (kernel: Kernel): Promise<Task> => {
    const parent = await kernel.bootstrapTask.create({ inheritMemory: false });
    const address = await parent.allocate(bytes);
    await parent.inherit(address, bytes, VM_INHERIT_COPY);
    (await parent.view(address, bytes)).fill(0x5a);
    return parent;
  };
}

const taskCreate: Create = (parent) => parent.create();
const normaTaskCreate: Create = (parent) => parent.createOn(1);
const normaTaskClone: Create = (parent) => parent.clone(1);

const BY_REGIONS = 'task creation by region count (SHARE regions, child on node 1 for norma_*)';

/** Issue 10, item 1. */
const TARGETS: readonly TargetSpec[] = [
  { kind: 'within', name: 'norma_task_clone of a 100-region task vs a postMessage round trip', comparison: BY_REGIONS,
    task: 'norma_task_clone 100 regions', peer: 'postMessage echo', atMost: 2 },
  { kind: 'under', name: 'task_create of 10,000 regions, same node', comparison: BY_REGIONS, task: 'task_create 10000 regions', ms: 3 },
];

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const comparisons: ComparisonResult[] = [];
  const regionCounts = [1, 100, 10_000];
  comparisons.push(await compare({
    suite: 'task-create',
    title: BY_REGIONS,
    baseline: 'postMessage echo',
    options,
    tasks: [
      postMessageEcho(),
      ...regionCounts.flatMap((regions) => [
        creation(`task_create ${regions} regions`, parentWithRegions(regions), taskCreate),
        // Each 10,000-region parent takes seconds to build: --quick keeps only the target's task.
        ...(options.quick && regions >= 10_000 ? [] : [
          creation(`norma_task_create ${regions} regions`, parentWithRegions(regions), normaTaskCreate),
          creation(`norma_task_clone ${regions} regions`, parentWithRegions(regions), normaTaskClone),
          ...(regions > 1 ? [creation(`norma_task_clone ${regions} regions, memory on node 1`, parentWithRegions(regions),
            normaTaskClone, undefined, true)] : []),
        ]),
      ]),
    ],
  }));
  const sizes = options.quick ? [1 * MiB, 16 * MiB] : [1 * MiB, 16 * MiB, 256 * MiB];
  for (const bytes of sizes) {
    const label = `${bytes / MiB} MiB`;
    const slow = bytes >= 64 * MiB;
    comparisons.push(await compare({
      suite: 'task-create',
      title: `COPY inheritance ${label} vs a raw copy into a fresh SharedArrayBuffer`,
      baseline: `SAB copy ${label}`,
      options,
      bench: slow ? { time: 0, iterations: options.quick ? 2 : 5, warmupIterations: 1, warmupTime: 0 } : {},
      tasks: [
        sabCopy(bytes),
        creation(`task_create COPY ${label}`, parentWithCopyRegion(bytes), taskCreate, bytes),
        creation(`norma_task_create COPY ${label}`, parentWithCopyRegion(bytes), normaTaskCreate, bytes),
      ],
    }));
  }
  return suiteResult('task-create', options, comparisons, evaluateTargets('task-create', comparisons, TARGETS));
}
