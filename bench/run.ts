/**
 * The bench runner behind `norma bench` (src/cli/bench.ts parses the command line and calls
 * runBench). Each suite prints its tables and targets, then <out>/<suite>.json and .svg are
 * written; progress goes to stderr. The result is one document for the whole run (the --json
 * output), which --compare reads back.
 *
 * Suites are imported when they run: a suite whose module cannot load because a package it needs
 * is missing is skipped with a message, as a peer task whose package is missing is (harness.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { renderSvg, type Scale } from './chart.js';
import { compareRuns, renderChanges, type Change } from './compare.js';
import type { SuiteRun } from './harness.js';
import {
  machineInfo, progress, renderMarkdown, renderTable, type MachineInfo, type SuiteResult, type Target,
} from './report.js';
import { renderTargets, targetsMarkdown } from './targets.js';

export interface SuiteEntry {
  readonly name: string;
  /** One line for --list and --help. */
  readonly about: string;
  readonly load: () => Promise<{ readonly run: SuiteRun }>;
}

/** The registry, in the order `norma bench` runs them. Adding a suite: one line here. */
export const SUITES: readonly SuiteEntry[] = [
  { name: 'peers', about: 'the peers alone: postMessage, Atomics (blocking, spin then wait), comlink, piscina, SAB copy', load: () => import('./peers.bench.js') },
  { name: 'task-create', about: 'task_create / norma_task_create / norma_task_clone by region count; COPY inheritance vs a raw copy', load: () => import('./task-create.bench.js') },
  { name: 'mach-msg', about: 'mach_msg RPC vs Atomics, postMessage, comlink; one-way 32 B messages vs postMessage between workers', load: () => import('./mach-msg.bench.js') },
  { name: 'ipc-scale', about: 'a mesh of tasks (2 and 4 nodes) vs a MessagePort mesh; 5, 50, 200 senders to one port', load: () => import('./ipc-scale.bench.js') },
  { name: 'channel', about: 'the ring + doorbell transport between two workers vs postMessage and Atomics', load: () => import('./channel.bench.js') },
  { name: 'threads', about: 'task.spawn vs piscina and new Worker; Game of Life vs piscina; token ring vs MessagePorts', load: () => import('./threads.bench.js') },
  { name: 'cluster', about: 'two processes over a loopback nats-server: mach_msg RPC and one-way vs raw NATS; norma_task_clone across processes; vm_read 1 MiB vs a NATS 1 MiB request', load: () => import('./cluster.bench.js') },
];

export interface BenchOptions {
  /** Suite names; empty: all. The caller has checked them against SUITES. */
  readonly names: readonly string[];
  readonly quick: boolean;
  /** Directory for <suite>.json and .svg. */
  readonly outDir: string;
  readonly scale: Scale;
  /** Also write the markdown report here. */
  readonly markdown?: string | undefined;
  /** An earlier run's suites (compare.ts loadPrevious): a "vs previous" column, and the changes. */
  readonly previous?: readonly SuiteResult[] | undefined;
  /** Where tables go: stdout, or stderr when stdout carries the JSON. */
  readonly write: (text: string) => void;
}

/** What `norma bench --json` prints. */
export interface BenchRun {
  readonly tool: 'norma bench';
  readonly format: 1;
  readonly quick: boolean;
  readonly machine: MachineInfo;
  readonly suites: readonly SuiteResult[];
  /** Every suite's targets, in suite order. */
  readonly targets: readonly Target[];
  readonly skipped: readonly { readonly suite: string; readonly reason: string }[];
  readonly failed: readonly { readonly suite: string; readonly error: string }[];
  /** With --compare: every task found in both runs. */
  readonly changes?: readonly Change[];
  readonly regressions?: number;
}

/** The package a failed import names, when the failure is a missing package (not our bug). */
function missingPackage(error: unknown): string | undefined {
  const e = error as { code?: string; message?: string } | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND') return undefined;
  return /Cannot find package '([^']+)'/.exec(e.message ?? '')?.[1];
}

export async function runBench(options: BenchOptions): Promise<BenchRun> {
  const chosen = options.names.length > 0 ? SUITES.filter((s) => options.names.includes(s.name)) : SUITES;
  const outDir = pathToFileURL(`${options.outDir.replace(/\/+$/, '')}/`);
  mkdirSync(outDir, { recursive: true });
  const suites: SuiteResult[] = [];
  const skipped: { suite: string; reason: string }[] = [];
  const failed: { suite: string; error: string }[] = [];
  for (const suite of chosen) {
    progress(`[${suite.name}]${options.quick ? ' --quick' : ''}`);
    const started = performance.now();
    let module: { readonly run: SuiteRun };
    try {
      module = await suite.load();
    } catch (error) {
      const name = missingPackage(error);
      if (name === undefined) throw error;
      const reason = `needs the package ${name} (npm install ${name})`;
      skipped.push({ suite: suite.name, reason });
      progress(`[${suite.name}] skipped: ${reason}`);
      continue;
    }
    try {
      const result = await module.run({ quick: options.quick });
      suites.push(result);
      options.write(renderTable(result, options.previous?.find((p) => p.suite === suite.name)));
      options.write(renderTargets(`${suite.name} — targets`, result.targets ?? []));
      const json = new URL(`${suite.name}.json`, outDir);
      const svg = new URL(`${suite.name}.svg`, outDir);
      writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
      writeFileSync(svg, renderSvg(result, options.scale));
      progress(`[${suite.name}] done in ${((performance.now() - started) / 1000).toFixed(1)} s → ` +
        `${fileURLToPath(json)}, ${fileURLToPath(svg)}`);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      failed.push({ suite: suite.name, error: message });
      progress(`[${suite.name}] FAILED: ${message}`);
    }
  }
  const targets = suites.flatMap((s) => s.targets ?? []);
  if (chosen.length > 1) options.write(renderTargets('all targets of this run', targets));
  if (options.markdown !== undefined && suites.length > 0) {
    writeFileSync(options.markdown, renderMarkdown(suites, (s) => targetsMarkdown(s.targets ?? [])));
    progress(`markdown → ${options.markdown}`);
  }
  const changes = options.previous === undefined ? undefined : compareRuns(suites, options.previous);
  if (changes !== undefined) options.write(renderChanges(changes));
  // Fires only if something (a worker, a port, a timer) still keeps the process alive.
  setTimeout(() => {
    progress(`still running 5 s after the last suite; open: ${process.getActiveResourcesInfo().join(', ')}`);
  }, 5_000).unref();
  return {
    tool: 'norma bench', format: 1, quick: options.quick, machine: machineInfo(), suites, targets, skipped, failed,
    ...(changes !== undefined
      ? { changes, regressions: changes.filter((c) => c.verdict === 'regression').length }
      : {}),
  };
}

/** Whether a run had a task that errored (a skipped task is not one). */
export function hadErrors(run: BenchRun): boolean {
  return run.failed.length > 0 || run.suites.some((s) =>
    s.comparisons.some((c) => c.tasks.some((t) => t.state !== 'completed' && t.state !== 'skipped')));
}
