/**
 * Bench output: the result records every suite returns, and what is made of them — a console
 * table and the markdown for bench/RESULTS.md (chart.ts draws the SVG, run.ts writes the files).
 * Nothing here runs a benchmark; harness.ts turns tinybench tasks into these records.
 *
 * Times are milliseconds in the records (tinybench's unit) and formatted to ns/µs/ms/s on output.
 */
import os from 'node:os';

/** Where JSON and SVG land by default: bench/out/ at the repository root (we run from dist/bench/). */
export const OUT_DIR = new URL('../../bench/out/', import.meta.url);

export interface MachineInfo {
  /** os.availableParallelism(): what the scheduler will give us, not the socket count. */
  readonly parallelism: number;
  readonly cpu: string;
  readonly memoryGiB: number;
  readonly platform: string;
  readonly node: string;
  /** ISO 8601, when the suite finished. */
  readonly date: string;
}

/** One tinybench task, reduced to the figures we report. */
export interface TaskRow {
  readonly name: string;
  /**
   * tinybench's TaskResult state; only 'completed' rows carry meaningful figures. 'skipped': the
   * task needs a package that is not installed (`error` names it); not a failure.
   */
  readonly state: string;
  readonly error?: string;
  readonly samples: number;
  /** First quartile; absent in JSON written before it was recorded. */
  readonly p25Ms?: number;
  readonly medianMs: number;
  readonly p75Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  /** Relative margin of error of the mean, in percent. */
  readonly rme: number;
  /** 1000 / median: operations per second at the median latency. */
  readonly opsPerSec: number;
  /** median / baseline's median; null when either is missing. 1 for the baseline itself. */
  readonly ratio: number | null;
  /** Bytes moved per iteration, when the task moves bytes; bandwidth = bytes / median. */
  readonly bytes?: number;
}

/** One Bench: our call and its peers, run side by side, with ratios against `baseline`. */
export interface ComparisonResult {
  readonly title: string;
  readonly baseline: string;
  readonly tasks: readonly TaskRow[];
}

export interface SuiteResult {
  readonly suite: string;
  readonly quick: boolean;
  readonly machine: MachineInfo;
  readonly comparisons: readonly ComparisonResult[];
  /** The ratios an issue asks for, from this suite's own comparisons (targets.ts). */
  readonly targets?: readonly Target[];
}

/** One target: a ratio or a figure an issue names, this run's value, and whether it is met. */
export interface Target {
  readonly suite: string;
  /** What is measured, in words. */
  readonly name: string;
  /** The goal as text ('≥ 3×', '≤ 10×', '< 2 µs'); '—' when there is only a figure to report. */
  readonly goal: string;
  /** This run's value: a ratio (unit '×'), a time in ms, a rate, or a plain number; null: not measured. */
  readonly value: number | null;
  readonly unit: '×' | 'ms' | 'msg/s' | '';
  /** null: no goal, or not measured. */
  readonly met: boolean | null;
  readonly note?: string;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    parallelism: os.availableParallelism(),
    cpu: cpus[0]?.model.trim().replace(/\s+/g, ' ') ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    platform: `${process.platform} ${process.arch} (${os.release()})`,
    node: process.version,
    date: new Date().toISOString(),
  };
}

export function suiteResult(
  suite: string,
  options: { readonly quick: boolean },
  comparisons: readonly ComparisonResult[],
  targets?: readonly Target[],
): SuiteResult {
  return { suite, quick: options.quick, machine: machineInfo(), comparisons, ...(targets ? { targets } : {}) };
}

/** Progress goes to stderr so stdout stays the report. */
export function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---------------------------------------------------------------------------------------------
// Formatting

export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  const abs = Math.abs(ms);
  if (abs === 0) return '0';
  if (abs < 1e-3) return `${sig(ms * 1e6)} ns`;
  if (abs < 1) return `${sig(ms * 1e3)} µs`;
  if (abs < 1e3) return `${sig(ms)} ms`;
  return `${sig(ms / 1e3)} s`;
}

export function formatOps(ops: number): string {
  if (!Number.isFinite(ops)) return '—';
  if (ops >= 1e6) return `${sig(ops / 1e6)} M`;
  if (ops >= 1e3) return `${sig(ops / 1e3)} k`;
  return sig(ops);
}

export function formatRatio(ratio: number | null): string {
  if (ratio === null || !Number.isFinite(ratio)) return '—';
  if (ratio >= 1 || ratio === 0) return `${sig(ratio)}×`;
  return `${ratio.toPrecision(2)}×`;
}

export function formatBandwidth(bytes: number | undefined, ms: number): string {
  if (bytes === undefined || !(ms > 0)) return '';
  const perSec = bytes / (ms / 1e3);
  if (perSec >= 2 ** 30) return `${sig(perSec / 2 ** 30)} GiB/s`;
  return `${sig(perSec / 2 ** 20)} MiB/s`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30 && bytes % 2 ** 30 === 0) return `${bytes / 2 ** 30} GiB`;
  if (bytes >= 2 ** 20 && bytes % 2 ** 20 === 0) return `${bytes / 2 ** 20} MiB`;
  if (bytes >= 2 ** 10 && bytes % 2 ** 10 === 0) return `${bytes / 2 ** 10} KiB`;
  return `${bytes} B`;
}

/** Three significant digits, no exponent. */
function sig(value: number): string {
  value = Number(value.toPrecision(3));
  const abs = Math.abs(value);
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

// ---------------------------------------------------------------------------------------------
// Comparing with an earlier run (--compare)

/** The same task's median in `previous`, matched by comparison title and task name. */
export function previousMedian(
  previous: SuiteResult | undefined,
  comparison: string,
  task: string,
): number | undefined {
  const row = previous?.comparisons
    .find((c) => c.title === comparison)
    ?.tasks.find((t) => t.name === task);
  return row?.state === 'completed' ? row.medianMs : undefined;
}

// ---------------------------------------------------------------------------------------------
// Console table

export interface Column {
  readonly head: string;
  readonly align: 'left' | 'right';
}

export function renderGrid(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) =>
    Math.max(c.head.length, ...rows.map((r) => (r[i] ?? '').length)),
  );
  const pad = (cell: string, i: number): string => {
    const width = widths[i] ?? 0;
    return columns[i]?.align === 'left' ? cell.padEnd(width) : cell.padStart(width);
  };
  const line = (cells: readonly string[]): string =>
    cells.map((cell, i) => pad(cell, i)).join('  ').trimEnd();
  return [
    line(columns.map((c) => c.head)),
    widths.map((w) => '─'.repeat(w)).join('  '),
    ...rows.map(line),
  ].join('\n');
}

/** The columns and cells shared by the console table and the markdown table. */
function tableOf(
  comparison: ComparisonResult,
  previous: SuiteResult | undefined,
): { columns: Column[]; rows: string[][] } {
  const hasBytes = comparison.tasks.some((t) => t.bytes !== undefined);
  const hasPrevious = previous !== undefined;
  const columns: Column[] = [
    { head: 'task', align: 'left' },
    { head: 'median', align: 'right' },
    { head: 'p75', align: 'right' },
    { head: 'ops/s', align: 'right' },
    { head: `× ${comparison.baseline}`, align: 'right' },
    ...(hasBytes ? [{ head: 'bandwidth', align: 'right' } as const] : []),
    { head: 'samples', align: 'right' },
    ...(hasPrevious ? [{ head: 'vs previous', align: 'right' } as const] : []),
  ];
  const rows = comparison.tasks.map((t) => {
    if (t.state !== 'completed') {
      return [t.name, t.state, t.error ?? '', ...columns.slice(3).map(() => '')];
    }
    const before = previousMedian(previous, comparison.title, t.name);
    return [
      t.name,
      formatTime(t.medianMs),
      formatTime(t.p75Ms),
      formatOps(t.opsPerSec),
      formatRatio(t.ratio),
      ...(hasBytes ? [formatBandwidth(t.bytes, t.medianMs)] : []),
      String(t.samples),
      ...(hasPrevious ? [before === undefined ? 'new' : formatRatio(t.medianMs / before)] : []),
    ];
  });
  return { columns, rows };
}

/** The console report: one table per comparison. */
export function renderTable(result: SuiteResult, previous?: SuiteResult): string {
  const parts = result.comparisons.map((comparison) => {
    const { columns, rows } = tableOf(comparison, previous);
    return `${result.suite} — ${comparison.title}\n${renderGrid(columns, rows)}`;
  });
  const m = result.machine;
  const footer =
    `${m.cpu} · ${m.parallelism} threads · Node ${m.node} · ${m.date}` +
    (result.quick ? ' · --quick (short runs; indicative only)' : '');
  return `\n${parts.join('\n\n')}\n${footer}\n`;
}

// ---------------------------------------------------------------------------------------------
// Markdown for bench/RESULTS.md

/** A markdown table of the same columns and cells as renderGrid. */
export function markdownGrid(columns: readonly Column[], rows: readonly (readonly string[])[]): string[] {
  const escape = (cell: string): string => cell.replace(/\|/g, '\\|');
  return [
    `| ${columns.map((c) => escape(c.head)).join(' | ')} |`,
    `| ${columns.map((c) => (c.align === 'left' ? ':--' : '--:')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(escape).join(' | ')} |`),
  ];
}

/**
 * One markdown document for several suites, headed by the machine they ran on; `after` adds
 * lines after a suite's tables (its targets).
 */
export function renderMarkdown(results: readonly SuiteResult[], after?: (result: SuiteResult) => string[]): string {
  const m = results[0]?.machine ?? machineInfo();
  const out: string[] = [
    '# Benchmark results',
    '',
    `- Machine: ${m.cpu}, ${m.parallelism} threads (os.availableParallelism()), ${m.memoryGiB} GiB`,
    `- Platform: ${m.platform}, Node ${m.node}`,
    `- Date: ${m.date}`,
    `- Medians of tinybench samples; ratios are median / baseline median (lower is faster).` +
      (results.some((r) => r.quick) ? ' Run with `--quick`: indicative only.' : ''),
  ];
  for (const result of results) {
    out.push('', `## ${result.suite}`);
    for (const comparison of result.comparisons) {
      const { columns, rows } = tableOf(comparison, undefined);
      out.push('', `### ${comparison.title}`, '', ...markdownGrid(columns, rows));
    }
    out.push(...(after?.(result) ?? []));
  }
  return `${out.join('\n')}\n`;
}
