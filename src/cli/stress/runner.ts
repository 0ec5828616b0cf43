/**
 * Runs one scenario: boots a kernel, gives the scenario a root task holding the control page,
 * watches the run (progress, the stop word, violations seen by threads), tears every task
 * down, and checks each node is back where it started (host_statistics). One kernel per
 * scenario, so one scenario's leak or crash cannot hide in the next.
 */
import { Kernel } from '../../kernel.js';
import type { Task } from '../../task.js';
import type { Thread } from '../../thread.js';
import { KERN_NODE_DOWN, VM_INHERIT_SHARE } from '../../shared/constants.js';
import { KernError, krName } from '../../shared/errors.js';
import type { NodeStatistics } from '../../shared/statistics.js';
import { Checker } from './invariants.js';
import { Results, type CallReport } from './results.js';
import { CONTROL_BYTES, CTL, type Invariant, type ThreadReport } from './thread-kit.js';

export interface RunOptions {
  readonly nodes: number;
  readonly seed: number;
  /** Operations per thread; 0 runs for `durationMs` instead. */
  readonly iterations: number;
  readonly durationMs: number;
  readonly broken?: Invariant;
}

/** What a scenario gets to run with. */
export interface ScenarioRun {
  readonly kernel: Kernel;
  readonly nodes: number;
  readonly seed: number;
  readonly iterations: number;
  readonly durationMs: number;
  /** A task on node 0 mapping the control page (shared: its children and clones map it too). */
  readonly root: Task;
  readonly control: number;
  readonly ctl: Int32Array;
  readonly check: Checker;
  readonly results: Results;
  /** Nodes the scenario crashed: their tasks are gone, and their figures are not compared. */
  readonly crashed: Set<number>;
  /** Remembers a task to terminate at teardown; returns it. */
  track(task: Task): Task;
  /** Resolves once `ops` operations are done, the run is told to stop, or `done` settles. */
  opsReach(ops: number, done?: Promise<unknown>): Promise<void>;
  /**
   * The thread's report, merged into the results under `label`, or undefined when it failed:
   * KERN_NODE_DOWN from a crashed node is what node-down-answers expects; anything else
   * violates expected-returns.
   */
  join<T extends ThreadReport>(label: string, thread: Thread, invariants?: readonly Invariant[]): Promise<T | undefined>;
}

export interface Scenario {
  readonly name: string;
  /** One line: what it does (help text, README). */
  readonly summary: string;
  /** What it checks beyond teardown-clean. */
  readonly checks: readonly Invariant[];
  /** Operations a run of `iterations` per thread does in all (the progress bar's total). */
  expectedOps(nodes: number, iterations: number): number;
  run(run: ScenarioRun): Promise<void>;
}

export interface ScenarioReport {
  readonly scenario: string;
  readonly ok: boolean;
  readonly nodes: number;
  readonly seed: number;
  readonly iterations: number;
  readonly durationMs: number;
  readonly elapsedMs: number;
  readonly ops: number;
  readonly opsPerSec: number;
  readonly sequence: { readonly digest: string; readonly draws: number };
  readonly calls: CallReport[];
  readonly counts: Record<string, number>;
  readonly invariants: { readonly name: Invariant; readonly checks: number; readonly ok: boolean; readonly violations: string[] }[];
  readonly statistics: { readonly before: NodeStatistics[]; readonly after: NodeStatistics[] };
}

/** What the progress display is told while a scenario runs. */
export interface ProgressSink {
  start(scenario: string, total: number, unit: 'ops' | 'ms'): void;
  update(scenario: string, done: number, ops: number, elapsedMs: number, statistics: NodeStatistics[] | undefined): void;
  finish(scenario: string, report: ScenarioReport): void;
}

const TICK_MS = 200;
const STATISTICS_EVERY_MS = 1000;
/** How long teardown waits for the nodes to settle back to their figures (ports die by messages). */
const SETTLE_MS = 5000;
const COMPARED = ['tasks', 'threads', 'ports', 'portSets', 'kernelPorts', 'regions', 'memoryObjects', 'bytes'] as const;

export async function runScenario(scenario: Scenario, options: RunOptions, progress: ProgressSink): Promise<ScenarioReport> {
  const kernel = await Kernel.boot({ nodes: options.nodes, busyWarningMs: 30_000 });
  try {
    const before = await kernel.statistics();
    const root = await kernel.bootstrapTask.create({ inheritMemory: false });
    const control = await root.allocate(kernel.pageSize);
    await root.inherit(control, kernel.pageSize, VM_INHERIT_SHARE);
    const bytes = await root.view(control, CONTROL_BYTES);
    const ctl = new Int32Array(bytes.buffer, bytes.byteOffset, CONTROL_BYTES / 4);
    const check = new Checker(options.broken);
    const results = new Results();
    const tracked: Task[] = [];
    const crashed = new Set<number>();
    const started = performance.now();
    const elapsed = () => performance.now() - started;

    const byDuration = options.iterations === 0;
    progress.start(scenario.name, byDuration ? options.durationMs : scenario.expectedOps(options.nodes, options.iterations),
      byDuration ? 'ms' : 'ops');
    let statistics: NodeStatistics[] | undefined;
    let lastStatistics = -STATISTICS_EVERY_MS;
    let fetching = false;
    const ticker = setInterval(() => {
      if (Atomics.load(ctl, CTL.VIOLATIONS) > 0 || (byDuration && elapsed() >= options.durationMs)) Atomics.store(ctl, CTL.STOP, 1);
      const ops = Atomics.load(ctl, CTL.OPS);
      progress.update(scenario.name, byDuration ? Math.min(elapsed(), options.durationMs) : ops, ops, elapsed(), statistics);
      if (!fetching && elapsed() - lastStatistics >= STATISTICS_EVERY_MS) {
        fetching = true;
        lastStatistics = elapsed();
        kernel.statistics().then((now) => { statistics = now; }, () => {}).finally(() => { fetching = false; });
      }
    }, TICK_MS);

    const run: ScenarioRun = {
      kernel, nodes: options.nodes, seed: options.seed, iterations: options.iterations, durationMs: options.durationMs,
      root, control, ctl, check, results, crashed,
      track: (task) => { tracked.push(task); return task; },
      opsReach: async (ops, done) => {
        let settled = false;
        done?.finally(() => { settled = true; }).catch(() => {});
        while (!settled && Atomics.load(ctl, CTL.OPS) < ops && Atomics.load(ctl, CTL.STOP) === 0) {
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      },
      join: async <T extends ThreadReport>(label: string, thread: Thread, invariants: readonly Invariant[] = []) => {
        try {
          const report = await thread.join() as T;
          results.merge(label, report, check, invariants);
          return report;
        } catch (error) {
          const kr = error instanceof KernError ? error.kr : undefined;
          if (crashed.has(thread.node)) {
            check.that('node-down-answers', kr === KERN_NODE_DOWN, () => `${label} on the crashed node ${thread.node}: join answered ${describe(error)}`);
            results.count(`join on the crashed node: ${kr === undefined ? 'error' : krName(kr)}`);
          } else {
            check.that('expected-returns', false, () => `${label} on node ${thread.node} failed: ${describe(error)}`);
          }
          return undefined;
        }
      },
    };
    try {
      await scenario.run(run);
    } finally {
      clearInterval(ticker);
    }
    const elapsedMs = elapsed();
    const ops = Atomics.load(ctl, CTL.OPS);
    progress.update(scenario.name, byDuration ? options.durationMs : ops, ops, elapsedMs, statistics);

    for (const task of [...tracked.reverse(), root]) await kernel.mach.task_terminate(task);
    const after = await settled(kernel, before, crashed);
    for (const now of after) {
      if (crashed.has(now.node)) continue;
      const was = before[now.node]!;
      const left = COMPARED.filter((field) => now[field] !== was[field]);
      check.equal('teardown-clean', left.length, 0,
        `node ${now.node} after teardown${left.length === 0 ? '' : ` (${left.map((f) => `${f} ${now[f]}, before ${was[f]}`).join('; ')})`}: figures changed`);
    }

    const report: ScenarioReport = {
      scenario: scenario.name, ok: check.ok, nodes: options.nodes, seed: options.seed, iterations: options.iterations,
      durationMs: byDuration ? options.durationMs : 0, elapsedMs: Math.round(elapsedMs), ops,
      opsPerSec: Math.round(ops / Math.max(elapsedMs, 1) * 1000), sequence: results.sequence,
      calls: results.calls(elapsedMs), counts: results.counts,
      invariants: [...new Set<Invariant>([...scenario.checks, 'teardown-clean', ...check.checks.keys(),
        ...check.violations.map((v) => v.invariant)])].map((name) => {
        const violations = check.violations.filter((v) => v.invariant === name).map((v) => v.detail);
        return { name, checks: check.checks.get(name) ?? 0, ok: violations.length === 0, violations };
      }),
      statistics: { before, after },
    };
    progress.finish(scenario.name, report);
    return report;
  } finally {
    await kernel.shutdown();
  }
}

/** The nodes' figures once they match `before` (or SETTLE_MS passed): port deaths travel as messages. */
async function settled(kernel: Kernel, before: NodeStatistics[], crashed: Set<number>): Promise<NodeStatistics[]> {
  const deadline = performance.now() + SETTLE_MS;
  for (;;) {
    const now = await kernel.statistics();
    const same = now.every((node) => crashed.has(node.node) || COMPARED.every((field) => node[field] === before[node.node]![field]));
    if (same || performance.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function describe(error: unknown): string {
  if (error instanceof KernError) return `${krName(error.kr)}${error.message ? ` (${error.message})` : ''}`;
  return error instanceof Error ? error.message : String(error);
}
