/**
 * Targets: the ratios an issue names, each taken from one comparison of the suite (our call and
 * its peer in the same Bench, same run), so a machine that is slow as a whole moves both sides.
 * A suite lists its targets as specs; the runner prints them as a table after the suite's own
 * tables and the JSON carries them, so the median of several runs can be taken per target.
 */
import {
  formatOps, formatRatio, formatTime, markdownGrid, renderGrid,
  type Column, type ComparisonResult, type Target, type TaskRow,
} from './report.js';

/** Where a target's rows are: a comparison title and task names in it. */
interface Rows {
  readonly comparison: string;
  readonly task: string;
}

export type TargetSpec = Rows & {
  readonly name: string;
  readonly note?: string;
} & (
  /** Messages per second against the peer's: peer median / task median, at least `atLeast` (or just reported). */
  | { readonly kind: 'faster'; readonly peer: string; readonly atLeast?: number }
  /** Time against the peer's: task median / peer median, at most `atMost`. */
  | { readonly kind: 'within'; readonly peer: string; readonly atMost: number }
  /** The task's median time under `ms`. */
  | { readonly kind: 'under'; readonly ms: number }
);

function completed(comparisons: readonly ComparisonResult[], title: string, task: string): TaskRow | undefined {
  const row = comparisons.find((c) => c.title === title)?.tasks.find((t) => t.name === task);
  return row?.state === 'completed' && row.medianMs > 0 ? row : undefined;
}

/** Each spec's value in this run; a row that did not complete gives value null ('not measured'). */
export function evaluateTargets(suite: string, comparisons: readonly ComparisonResult[], specs: readonly TargetSpec[]): Target[] {
  return specs.map((spec) => {
    const row = completed(comparisons, spec.comparison, spec.task);
    const peer = spec.kind === 'under' ? row : completed(comparisons, spec.comparison, spec.peer);
    const base = { suite, name: spec.name, ...(spec.note !== undefined ? { note: spec.note } : {}) };
    switch (spec.kind) {
      case 'faster': {
        const value = row && peer ? peer.medianMs / row.medianMs : null;
        const goal = spec.atLeast === undefined ? '—' : `≥ ${spec.atLeast}×`;
        return { ...base, goal, unit: '×', value, met: value === null || spec.atLeast === undefined ? null : value >= spec.atLeast };
      }
      case 'within': {
        const value = row && peer ? row.medianMs / peer.medianMs : null;
        return { ...base, goal: `≤ ${spec.atMost}×`, unit: '×', value, met: value === null ? null : value <= spec.atMost };
      }
      case 'under': {
        const value = row?.medianMs ?? null;
        return { ...base, goal: `< ${formatTime(spec.ms)}`, unit: 'ms', value, met: value === null ? null : value < spec.ms };
      }
    }
  });
}

export function formatTargetValue(target: Target): string {
  if (target.value === null) return 'not measured';
  switch (target.unit) {
    case '×': return formatRatio(target.value);
    case 'ms': return formatTime(target.value);
    case 'msg/s': return `${formatOps(target.value)} msg/s`;
    default: return target.value.toPrecision(3);
  }
}

function targetTable(targets: readonly Target[]): { columns: Column[]; rows: string[][] } {
  const columns: Column[] = [
    { head: 'target', align: 'left' },
    { head: 'goal', align: 'right' },
    { head: 'this run', align: 'right' },
    { head: 'met?', align: 'left' },
  ];
  const rows = targets.map((t) => [
    t.name,
    t.goal,
    formatTargetValue(t),
    (t.met === null ? '—' : t.met ? 'yes' : 'NO') + (t.note !== undefined ? ` (${t.note})` : ''),
  ]);
  return { columns, rows };
}

/** The console table of a run's targets; empty when there are none. */
export function renderTargets(title: string, targets: readonly Target[]): string {
  if (targets.length === 0) return '';
  const { columns, rows } = targetTable(targets);
  return `\n${title}\n${renderGrid(columns, rows)}\n`;
}

export function targetsMarkdown(targets: readonly Target[]): string[] {
  if (targets.length === 0) return [];
  const { columns, rows } = targetTable(targets);
  return ['', '### targets', '', ...markdownGrid(columns, rows)];
}
