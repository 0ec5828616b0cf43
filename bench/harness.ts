/**
 * How a suite runs a comparison: one tinybench `Bench` per comparison, our call and its peers in
 * the same Bench and the same run, setup and teardown outside the timed window.
 *
 * tinybench 6 facts this relies on (read from node_modules/tinybench/dist):
 * - `Bench.run()` warms up every task first, then runs every task. `beforeAll`/`afterAll` run once
 *   per task *and phase* (mode 'warmup', then 'run'), so workers are started in the first
 *   `beforeAll` and kept through the run phase: the worker side stays JIT-warm.
 * - `afterAll` is skipped when the task function throws, so `compare` stops every task again in
 *   a `finally`; `stop` must be idempotent (the wrapper below guarantees it).
 * - Without an explicit `async` option tinybench *calls the function once at `add()` time* to see
 *   whether it returns a promise — before any setup. Every BenchTask states `async`.
 * - A task function may return `{ overriddenDuration, overriddenIterationCost }` (ms). The first
 *   replaces the sample; the second is what the `time` budget is charged. When a function times
 *   a batch of K operations and reports the per-operation time, it must also return the batch's
 *   wall time as `overriddenIterationCost`, or the budget loop runs ~K times too many iterations.
 */
import { Bench, type BenchOptions, type Fn, type HookMode, type Task } from 'tinybench';
import {
  progress,
  formatTime,
  type ComparisonResult,
  type SuiteResult,
  type TaskRow,
} from './report.js';

export interface SuiteOptions {
  /** Shorter time budgets and fewer iterations: a smoke test, not figures to publish. */
  readonly quick: boolean;
}

/** Every suite module exports `run` with this type. */
export type SuiteRun = (options: SuiteOptions) => Promise<SuiteResult>;

/** One timed thing: a peer from peers.ts, or a kernel call in a suite. */
export interface BenchTask {
  readonly name: string;
  /** Whether `fn` returns a promise (tinybench would otherwise call `fn` early to find out). */
  readonly async: boolean;
  /** Setup, outside the timed window: start workers, boot a kernel, allocate. Called once. */
  readonly start?: () => Promise<void> | void;
  /** The timed function. Called only between `start` and `stop`. */
  readonly fn: Fn;
  /** Teardown: terminate every worker `start` made. Called once, even after a failure. */
  readonly stop?: () => Promise<void> | void;
  /** Bytes moved per call, when the task moves bytes (adds a bandwidth column). */
  readonly bytes?: number;
  /**
   * Why the task cannot run here (a package it needs is not installed), or undefined when it
   * can. Asked before the run; such a task is reported 'skipped' with the reason, not failed.
   */
  readonly unavailable?: () => Promise<string | undefined>;
}

export interface ComparisonSpec {
  /** Suite name, for progress lines. */
  readonly suite: string;
  readonly title: string;
  /** The task name ratios are taken against; must be one of `tasks`. */
  readonly baseline: string;
  readonly tasks: readonly BenchTask[];
  readonly options: SuiteOptions;
  /** tinybench overrides for this comparison (e.g. a longer `time` for slow tasks). */
  readonly bench?: Omit<BenchOptions, 'name'>;
}

/** Budgets sized for a 2-core, noisy machine: a comparison of five tasks takes a few seconds. */
export function benchOptions(options: SuiteOptions): BenchOptions {
  return options.quick
    ? { time: 100, iterations: 5, warmupTime: 30, warmupIterations: 2 }
    : { time: 300, iterations: 10, warmupTime: 100, warmupIterations: 3 };
}

/** Run one comparison and reduce it to a ComparisonResult. Never leaves a task started. */
export async function compare(spec: ComparisonSpec): Promise<ComparisonResult> {
  if (!spec.tasks.some((t) => t.name === spec.baseline)) {
    throw new Error(`comparison "${spec.title}": baseline "${spec.baseline}" is not one of its tasks`);
  }
  // Samples are kept for the first quartile (tinybench reports p50 and p75, not p25).
  const bench = new Bench({ name: spec.title, retainSamples: true, ...benchOptions(spec.options), ...spec.bench });
  const stops: (() => Promise<void>)[] = [];
  const label = `${spec.suite} › ${spec.title}`;
  const skipped = new Map<string, string>();
  for (const task of spec.tasks) {
    const reason = await task.unavailable?.();
    if (reason !== undefined) {
      skipped.set(task.name, reason);
      progress(`  ${label} › ${task.name} skipped: ${reason}`);
    }
  }

  for (const task of spec.tasks.filter((t) => !skipped.has(t.name))) {
    let started = false;
    const stop = async (): Promise<void> => {
      if (!started) return;
      started = false;
      await task.stop?.();
    };
    stops.push(stop);
    bench.add(task.name, task.fn, {
      async: task.async,
      beforeAll: async (mode?: HookMode) => {
        progress(`  ${label} › ${task.name} (${mode ?? 'run'})`);
        if (started) return;
        // Mark first: a start that fails halfway still gets its stop.
        started = true;
        await task.start?.();
      },
      afterAll: async (mode?: HookMode) => {
        if (mode === 'run') await stop();
      },
    });
  }
  bench.addEventListener('error', (event) => {
    progress(`  ${label} › ${event.task.name} FAILED: ${event.error.message}`);
  });
  bench.addEventListener('cycle', (event) => {
    const result = event.task.result;
    if (result.state === 'completed') {
      progress(`    median ${formatTime(result.latency.p50)} over ${result.latency.samplesCount} samples`);
    }
  });

  try {
    await bench.run();
  } finally {
    const failures: unknown[] = [];
    for (const stop of stops) {
      try {
        await stop();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) {
      throw new AggregateError(failures, `${label}: ${failures.length} task(s) failed to stop`);
    }
  }
  return collect(spec, bench.tasks, skipped);
}

function collect(spec: ComparisonSpec, tasks: readonly Task[], skipped: ReadonlyMap<string, string>): ComparisonResult {
  const bytesOf = new Map(spec.tasks.map((t) => [t.name, t.bytes]));
  const ran = new Map(tasks.map((task) => [task.name, row(task, bytesOf.get(task.name))]));
  // In the order the suite gave, skipped tasks in their place.
  const rows = spec.tasks.map((t) => ran.get(t.name) ?? missing(t.name, 'skipped', skipped.get(t.name)));
  const base = rows.find((r) => r.name === spec.baseline);
  const baseMedian = base?.state === 'completed' && base.medianMs > 0 ? base.medianMs : undefined;
  return {
    title: spec.title,
    baseline: spec.baseline,
    tasks: rows.map((r) => ({
      ...r,
      ratio: baseMedian !== undefined && r.state === 'completed' ? r.medianMs / baseMedian : null,
    })),
  };
}

function row(task: Task, bytes: number | undefined): TaskRow {
  const result = task.result;
  const common = { name: task.name, ratio: null, ...(bytes !== undefined ? { bytes } : {}) };
  if (result.state === 'completed' || result.state === 'aborted-with-statistics') {
    const l = result.latency;
    return {
      ...common,
      state: result.state,
      samples: l.samplesCount,
      p25Ms: l.samples === undefined ? Number.NaN : quantile(l.samples, 0.25),
      medianMs: l.p50,
      p75Ms: l.p75,
      p99Ms: l.p99,
      meanMs: l.mean,
      minMs: l.min,
      maxMs: l.max,
      rme: l.rme,
      opsPerSec: l.p50 > 0 ? 1000 / l.p50 : Number.POSITIVE_INFINITY,
    };
  }
  return missing(task.name, result.state, result.state === 'errored' ? result.error.message : undefined);
}

/** A row with no figures: a task that failed, was aborted, or was skipped. */
function missing(name: string, state: string, error: string | undefined): TaskRow {
  return {
    name,
    ratio: null,
    state,
    ...(error !== undefined ? { error } : {}),
    samples: 0,
    p25Ms: Number.NaN,
    medianMs: Number.NaN,
    p75Ms: Number.NaN,
    p99Ms: Number.NaN,
    meanMs: Number.NaN,
    minMs: Number.NaN,
    maxMs: Number.NaN,
    rme: Number.NaN,
    opsPerSec: Number.NaN,
  };
}

/** The q-quantile of ascending samples, interpolated between neighbours as tinybench's p75 is. */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const below = sorted[lo] ?? Number.NaN;
  const above = sorted[Math.min(lo + 1, sorted.length - 1)] ?? below;
  return below + (above - below) * (at - lo);
}
