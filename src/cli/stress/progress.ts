/**
 * The live display: on a terminal a bar per scenario (cli-progress) with operations, their
 * rate and the nodes' own figures; elsewhere (CI, a pipe) a plain line a second. Both on
 * stderr, so stdout carries only the end tables or the JSON.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { NodeStatistics } from '../../shared/statistics.js';
import type { ProgressSink, ScenarioReport } from './runner.js';

const PLAIN_EVERY_MS = 1000;

/** One line of the nodes' figures, summed (and how many nodes are down). */
export function describeNodes(statistics: readonly NodeStatistics[] | undefined): string {
  if (statistics === undefined) return 'nodes: …';
  const sum = (field: 'tasks' | 'threads' | 'ports' | 'regions' | 'memoryObjects') =>
    statistics.reduce((total, node) => total + node[field], 0);
  const down = statistics.filter((node) => node.down === true).length;
  const queued = statistics.reduce((total, node) => total + (node.ipc?.messagesQueued ?? 0), 0);
  return `nodes: ${sum('tasks')} tasks, ${sum('threads')} threads, ${sum('ports')} ports, ${sum('regions')} regions, ` +
    `${sum('memoryObjects')} objects${queued > 0 ? `, ${queued} messages queued so far` : ''}${down > 0 ? `, ${down} down` : ''}`;
}

export function progressSink(stream: NodeJS.WriteStream, quiet: boolean): ProgressSink & { stop(): void } {
  if (quiet) return { start() {}, update() {}, finish() {}, stop() {} };
  return stream.isTTY ? terminal(stream) : plain(stream);
}

function terminal(stream: NodeJS.WriteStream): ProgressSink & { stop(): void } {
  const bars = new MultiBar({
    stream, hideCursor: true, clearOnComplete: false, fps: 8,
    format: '{scenario} [{bar}] {percentage}% | {ops} ops, {rate} ops/s | {nodes}',
  }, Presets.shades_classic);
  const active = new Map<string, SingleBar>();
  return {
    start(scenario, total) {
      active.set(scenario, bars.create(Math.max(total, 1), 0, { scenario: scenario.padEnd(14), ops: 0, rate: 0, nodes: describeNodes(undefined) }));
    },
    update(scenario, done, ops, elapsedMs, statistics) {
      active.get(scenario)?.update(done, { ops, rate: Math.round(ops / Math.max(elapsedMs, 1) * 1000), nodes: describeNodes(statistics) });
    },
    finish(scenario, report) {
      const bar = active.get(scenario);
      bar?.update(bar.getTotal(), { ops: report.ops, rate: report.opsPerSec, nodes: report.ok ? 'invariants hold' : 'INVARIANT VIOLATED' });
      bar?.stop();
    },
    stop() { bars.stop(); },
  };
}

function plain(stream: NodeJS.WriteStream): ProgressSink & { stop(): void } {
  let last = 0;
  return {
    start(scenario, total, unit) {
      last = performance.now();
      stream.write(`stress ${scenario}: started (${unit === 'ms' ? `${total / 1000} s` : `${total} operations`})\n`);
    },
    update(scenario, _done, ops, elapsedMs, statistics) {
      if (performance.now() - last < PLAIN_EVERY_MS) return;
      last = performance.now();
      stream.write(`stress ${scenario}: ${(elapsedMs / 1000).toFixed(1)} s, ${ops} ops, ` +
        `${Math.round(ops / Math.max(elapsedMs, 1) * 1000)} ops/s; ${describeNodes(statistics)}\n`);
    },
    finish(scenario, report: ScenarioReport) {
      stream.write(`stress ${scenario}: ${report.ok ? 'done' : 'INVARIANT VIOLATED'}, ${report.ops} ops in ${(report.elapsedMs / 1000).toFixed(1)} s\n`);
    },
    stop() {},
  };
}
