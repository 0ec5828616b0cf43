/**
 * The end of a run: a table per scenario (cli-table3) of operations per second per call and
 * latency percentiles, what was counted, each invariant with how often it was checked, and
 * for a violation the command line that replays the run. `--json` writes the same as JSON.
 */
import Table from 'cli-table3';
import type { ScenarioReport } from './runner.js';
import { INVARIANTS } from './thread-kit.js';

export interface RunReport {
  readonly ok: boolean;
  readonly seed: number;
  readonly nodes: number;
  readonly scenarios: ScenarioReport[];
  /** The command line that replays the first scenario that failed (absent when all passed). */
  readonly replay?: string;
}

/** The command line that replays `report`'s run: same scenario, nodes, seed and length. */
export function replayLine(report: ScenarioReport): string {
  const length = report.iterations > 0 ? `--iterations ${report.iterations}` : `--duration ${report.durationMs}ms`;
  return `norma stress ${report.scenario} --nodes ${report.nodes} --seed ${report.seed} ${length}${report.scenario === 'chaos' ? ' --chaos' : ''}`;
}

const number = (value: number) => value.toLocaleString('en-US');

export function renderScenario(report: ScenarioReport): string {
  const table = new Table({
    head: ['call', 'count', 'ops/s', 'p50 µs', 'p90 µs', 'p99 µs', 'max µs'],
    colAligns: ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
    style: { head: [], border: [], compact: true },
  });
  for (const call of report.calls) {
    table.push([call.call, number(call.count), number(call.opsPerSec), call.p50Us, call.p90Us, call.p99Us, call.maxUs]);
  }
  const lines = [
    '',
    `== ${report.scenario}: ${report.nodes} nodes, seed ${report.seed}, ` +
      `${report.iterations > 0 ? `${report.iterations} iterations per thread` : `${report.durationMs / 1000} s`}; ` +
      `${number(report.ops)} ops in ${(report.elapsedMs / 1000).toFixed(2)} s (${number(report.opsPerSec)} ops/s); ` +
      `sequence ${report.sequence.digest} (${number(report.sequence.draws)} draws)`,
    table.toString(),
  ];
  const counts = Object.entries(report.counts);
  if (counts.length > 0) lines.push(`counted: ${counts.map(([key, n]) => `${key} ${number(n)}`).join('; ')}`);
  lines.push('checked:');
  for (const invariant of report.invariants) {
    lines.push(`  ${invariant.ok ? 'ok  ' : 'FAIL'} ${invariant.name} (${number(invariant.checks)} checks): ${INVARIANTS[invariant.name]}`);
    for (const violation of invariant.violations.slice(0, 10)) lines.push(`         ${violation}`);
  }
  return lines.join('\n');
}

/** The closing lines: all held, or which invariant broke and how to replay it. */
export function renderVerdict(run: RunReport): string {
  if (run.ok) return `\nall invariants held (${run.scenarios.length} scenario${run.scenarios.length === 1 ? '' : 's'}, seed ${run.seed})`;
  const failed = run.scenarios.filter((scenario) => !scenario.ok);
  const lines = [''];
  for (const scenario of failed) {
    for (const invariant of scenario.invariants.filter((i) => !i.ok)) {
      lines.push(`invariant violated: ${invariant.name} in ${scenario.scenario}: ${invariant.violations[0]}`);
    }
  }
  lines.push(`replay: ${run.replay}`);
  return lines.join('\n');
}
