/**
 * --compare: this run against an earlier one, task by task, flagging what moved beyond the noise.
 *
 * What is compared. A task that is not its comparison's baseline is compared by its ratio to that
 * baseline (both measured in the same run), so a machine that is slower or faster as a whole (this
 * VM switches between wake-up costs of ~12 and ~55 µs from one run to the next) does not count as
 * a regression. The baseline itself is compared by its median; it is a peer (or our own reference
 * case), so its change is reported as drift, never counted as a regression.
 *
 * What counts as noise. Each run's own samples give its spread: u = (p75 − p25) / (2 · median),
 * half the interquartile range relative to the median (for a ratio, the task's u plus the
 * baseline's). A figure regressed when it grew by more than u(previous) + u(this run): exactly
 * when the two runs' interquartile ranges no longer overlap. Tasks timed in batches have narrow
 * sample spreads but still drift from run to run: the same build's full-run medians in
 * bench/RESULTS.md (paired runs of 2026-11-29) moved by ±5% for the cross-node one-way mach_msg
 * over five runs, so no change under NOISE_FLOOR counts. Tasks whose medians moved more than that
 * between runs (same-node RPC: 4.3-9.0 µs) also have wide sample spreads, which the rule covers.
 * --quick runs take 3-10 samples a task: their quartiles are rough, so compare full runs.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatRatio, formatTime, renderGrid, type Column, type SuiteResult, type TaskRow } from './report.js';

/** The least relative change that can count (see above). */
export const NOISE_FLOOR = 0.1;

export interface Change {
  readonly suite: string;
  readonly comparison: string;
  readonly task: string;
  /** 'ratio': to the comparison's baseline, same run; 'median': the task's own time. */
  readonly basis: 'ratio' | 'median';
  readonly before: number;
  readonly after: number;
  /** after / before: above 1 is slower. */
  readonly change: number;
  /** The relative change that noise explains (≥ NOISE_FLOOR). */
  readonly noise: number;
  readonly verdict: 'regression' | 'improvement' | 'within noise' | 'drift';
}

/** Half the interquartile range relative to the median; older JSON without p25 uses 2·(p75 − p50). */
function spread(row: TaskRow): number {
  const p25 = row.p25Ms !== undefined && Number.isFinite(row.p25Ms) ? row.p25Ms : 2 * row.medianMs - row.p75Ms;
  return Math.max(0, row.p75Ms - p25) / (2 * row.medianMs);
}

function usable(row: TaskRow | undefined): row is TaskRow {
  return row !== undefined && row.state === 'completed' && row.medianMs > 0 && Number.isFinite(row.p75Ms);
}

/** Every task completed in both runs, matched by suite, comparison title and task name. */
export function compareRuns(current: readonly SuiteResult[], previous: readonly SuiteResult[]): Change[] {
  const changes: Change[] = [];
  for (const suite of current) {
    const before = previous.find((p) => p.suite === suite.suite);
    for (const comparison of suite.comparisons) {
      const old = before?.comparisons.find((c) => c.title === comparison.title);
      if (old === undefined) continue;
      const base = comparison.tasks.find((t) => t.name === comparison.baseline);
      const oldBase = old.tasks.find((t) => t.name === old.baseline);
      for (const row of comparison.tasks) {
        const was = old.tasks.find((t) => t.name === row.name);
        if (!usable(row) || !usable(was)) continue;
        const isBaseline = row.name === comparison.baseline;
        const byRatio = !isBaseline && usable(base) && usable(oldBase) && old.baseline === comparison.baseline;
        const after = byRatio ? row.medianMs / base.medianMs : row.medianMs;
        const prior = byRatio ? was.medianMs / oldBase.medianMs : was.medianMs;
        const noise = Math.max(NOISE_FLOOR,
          spread(row) + spread(was) + (byRatio ? spread(base) + spread(oldBase) : 0));
        const change = after / prior;
        const moved = change > 1 + noise ? 'regression' : change < 1 / (1 + noise) ? 'improvement' : 'within noise';
        changes.push({
          suite: suite.suite, comparison: comparison.title, task: row.name, basis: byRatio ? 'ratio' : 'median',
          before: prior, after, change, noise,
          verdict: isBaseline && moved !== 'within noise' ? 'drift' : moved,
        });
      }
    }
  }
  return changes;
}

/** The console report of a comparison: every change beyond noise, then a count. */
export function renderChanges(changes: readonly Change[]): string {
  const moved = changes.filter((c) => c.verdict !== 'within noise');
  const columns: Column[] = [
    { head: 'suite › comparison › task', align: 'left' },
    { head: 'basis', align: 'left' },
    { head: 'before', align: 'right' },
    { head: 'now', align: 'right' },
    { head: 'change', align: 'right' },
    { head: 'noise', align: 'right' },
    { head: 'verdict', align: 'left' },
  ];
  const figure = (c: Change, value: number): string => (c.basis === 'ratio' ? formatRatio(value) : formatTime(value));
  const rows = moved.map((c) => [
    `${c.suite} › ${c.comparison} › ${c.task}`, c.basis, figure(c, c.before), figure(c, c.after),
    formatRatio(c.change), `±${(c.noise * 100).toFixed(0)}%`, c.verdict === 'regression' ? 'REGRESSION' : c.verdict,
  ]);
  const count = (verdict: Change['verdict']): number => changes.filter((c) => c.verdict === verdict).length;
  const summary = `compared ${changes.length} tasks: ${count('regression')} regression(s), ${count('improvement')} improvement(s), ` +
    `${count('within noise')} within noise, ${count('drift')} baseline(s) drifted (the machine, not counted)`;
  return `\nvs previous run\n${moved.length > 0 ? `${renderGrid(columns, rows)}\n` : ''}${summary}\n`;
}

/**
 * An earlier run's suites: a `norma bench --json` document ({ suites }), one suite's JSON, or a
 * directory of <suite>.json files as a run leaves them in its --out directory. Throws with the
 * path when it is none of these.
 */
export function loadPrevious(path: string): SuiteResult[] {
  const isSuite = (value: unknown): value is SuiteResult =>
    typeof value === 'object' && value !== null && 'suite' in value && Array.isArray((value as SuiteResult).comparisons);
  const parse = (file: string): unknown => JSON.parse(readFileSync(file, 'utf8'));
  if (statSync(path).isDirectory()) {
    const suites = readdirSync(path).filter((f) => f.endsWith('.json')).map((f) => parse(join(path, f))).filter(isSuite);
    if (suites.length === 0) throw new Error(`${path} holds no suite JSON`);
    return suites;
  }
  const value = parse(path);
  if (isSuite(value)) return [value];
  const suites = (value as { suites?: unknown } | null)?.suites;
  if (Array.isArray(suites) && suites.every(isSuite)) return suites;
  throw new Error(`${path} is neither a norma bench --json document nor a suite's JSON`);
}
