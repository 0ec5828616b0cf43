/**
 * Bench output: the result records every suite returns, and what is made of them — a console
 * table, bench/out/<suite>.json, bench/out/<suite>.svg, and the markdown for bench/RESULTS.md.
 * Nothing here runs a benchmark; harness.ts turns tinybench tasks into these records.
 *
 * Times are milliseconds in the records (tinybench's unit) and formatted to ns/µs/ms/s on output.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';

/** Where JSON and SVG land: bench/out/ at the repository root (we run from dist-bench/bench/). */
export const OUT_DIR = new URL('../../bench/out/', import.meta.url);
/** The committed figures file `--markdown` writes by default. */
export const RESULTS_MD = new URL('../../bench/RESULTS.md', import.meta.url);

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
  /** tinybench's TaskResult state; only 'completed' rows carry meaningful figures. */
  readonly state: string;
  readonly error?: string;
  readonly samples: number;
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
): SuiteResult {
  return { suite, quick: options.quick, machine: machineInfo(), comparisons };
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

/** A suite's JSON from an earlier run, or undefined when there is none. */
export function readSuiteJson(path: URL | string): SuiteResult | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as SuiteResult;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Console table

interface Column {
  readonly head: string;
  readonly align: 'left' | 'right';
}

function renderGrid(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
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

function mdEscape(cell: string): string {
  return cell.replace(/\|/g, '\\|');
}

/** One markdown document for several suites, headed by the machine they ran on. */
export function renderMarkdown(results: readonly SuiteResult[]): string {
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
      out.push(
        '',
        `### ${comparison.title}`,
        '',
        `| ${columns.map((c) => mdEscape(c.head)).join(' | ')} |`,
        `| ${columns.map((c) => (c.align === 'left' ? ':--' : '--:')).join(' | ')} |`,
        ...rows.map((r) => `| ${r.map(mdEscape).join(' | ')} |`),
      );
    }
  }
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// SVG bar chart

export type Scale = 'auto' | 'linear' | 'log';

const CHART = {
  width: 960,
  labelWidth: 300,
  valueWidth: 170,
  barHeight: 18,
  barGap: 6,
  headerHeight: 28,
  top: 40,
  axisHeight: 40,
  font: 'ui-sans-serif, system-ui, sans-serif',
} as const;

function xmlEscape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

/** Log scale when the medians span more than two orders of magnitude, unless told. */
export function chooseScale(result: SuiteResult, scale: Scale): 'linear' | 'log' {
  if (scale !== 'auto') return scale;
  const medians = completedRows(result).map((t) => t.medianMs).filter((v) => v > 0);
  if (medians.length === 0) return 'linear';
  return Math.max(...medians) / Math.min(...medians) > 100 ? 'log' : 'linear';
}

function completedRows(result: SuiteResult): TaskRow[] {
  return result.comparisons.flatMap((c) => c.tasks.filter((t) => t.state === 'completed'));
}

/** 1, 2, 5 × 10^k at or above `value`. */
function niceCeil(value: number): number {
  const decade = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * decade >= value) return step * decade;
  return 10 * decade;
}

/**
 * Horizontal bars, one per task, grouped by comparison, on one time axis for the whole suite.
 * Bar = median; the thin line beyond it reaches p75. The baseline of each group is grey.
 */
export function renderSvg(result: SuiteResult, scale: Scale = 'auto'): string {
  const mode = chooseScale(result, scale);
  const rows = completedRows(result);
  const values = rows.flatMap((t) => [t.medianMs, t.p75Ms]).filter((v) => v > 0);
  const plotLeft = CHART.labelWidth;
  const plotWidth = CHART.width - CHART.labelWidth - CHART.valueWidth;

  let lo: number;
  let hi: number;
  if (values.length === 0) {
    lo = mode === 'log' ? 1e-3 : 0;
    hi = 1;
  } else if (mode === 'log') {
    lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
    hi = 10 ** Math.ceil(Math.log10(Math.max(...values)));
    if (hi <= lo) hi = lo * 10;
  } else {
    lo = 0;
    hi = niceCeil(Math.max(...values));
  }
  const x = (ms: number): number => {
    const clamped = Math.min(Math.max(ms, mode === 'log' ? lo : 0), hi);
    const f =
      mode === 'log'
        ? (Math.log10(clamped) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))
        : (clamped - lo) / (hi - lo);
    return plotLeft + f * plotWidth;
  };
  const ticks: number[] = [];
  if (mode === 'log') {
    for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  } else {
    for (let i = 0; i <= 5; i++) ticks.push(lo + ((hi - lo) * i) / 5);
  }

  const body: string[] = [];
  let y = CHART.top;
  for (const comparison of result.comparisons) {
    body.push(
      `<text x="8" y="${y + 18}" font-weight="600">${xmlEscape(comparison.title)}` +
        `<tspan fill="#666" font-weight="400" dx="8">(ratios × ${xmlEscape(comparison.baseline)})</tspan></text>`,
    );
    y += CHART.headerHeight;
    for (const t of comparison.tasks) {
      const mid = y + CHART.barHeight / 2 + 4;
      body.push(
        `<text x="${plotLeft - 8}" y="${mid}" text-anchor="end">${xmlEscape(t.name)}</text>`,
      );
      if (t.state === 'completed' && t.medianMs > 0) {
        const x0 = x(mode === 'log' ? lo : 0);
        const xm = x(t.medianMs);
        const xp = x(t.p75Ms);
        const fill = t.name === comparison.baseline ? '#9aa0a6' : '#3b78e7';
        const label =
          `${formatTime(t.medianMs)}  ${formatRatio(t.ratio)}` +
          (t.bytes !== undefined ? `  ${formatBandwidth(t.bytes, t.medianMs)}` : '');
        body.push(
          `<rect x="${x0.toFixed(1)}" y="${y}" width="${Math.max(1, xm - x0).toFixed(1)}" ` +
            `height="${CHART.barHeight}" fill="${fill}"><title>${xmlEscape(
              `${t.name}: median ${formatTime(t.medianMs)}, p75 ${formatTime(t.p75Ms)}, ` +
                `${t.samples} samples`,
            )}</title></rect>`,
          `<line x1="${xm.toFixed(1)}" x2="${xp.toFixed(1)}" y1="${y + CHART.barHeight / 2}" ` +
            `y2="${y + CHART.barHeight / 2}" stroke="#222" stroke-width="1.5"/>`,
          `<text x="${(Math.max(xm, xp) + 6).toFixed(1)}" y="${mid}" fill="#333">${xmlEscape(label)}</text>`,
        );
      } else {
        body.push(
          `<text x="${plotLeft + 4}" y="${mid}" fill="#c5221f">${xmlEscape(
            t.state === 'completed' ? 'no time' : `${t.state}${t.error ? `: ${t.error}` : ''}`,
          )}</text>`,
        );
      }
      y += CHART.barHeight + CHART.barGap;
    }
    y += CHART.barGap;
  }

  const axisY = y + 4;
  const grid = ticks.map((v) => {
    const tx = x(v).toFixed(1);
    return (
      `<line x1="${tx}" x2="${tx}" y1="${CHART.top}" y2="${axisY}" stroke="#e0e0e0"/>` +
      `<text x="${tx}" y="${axisY + 16}" text-anchor="middle" fill="#555">${formatTime(v).replace(/\.0+ /, ' ')}</text>`
    );
  });
  const height = axisY + CHART.axisHeight;
  const m = result.machine;
  const caption =
    `${result.suite}: median (bar) and p75 (line), ${mode} scale · ${m.cpu} · ` +
    `${m.parallelism} threads · Node ${m.node} · ${m.date.slice(0, 10)}${result.quick ? ' · quick' : ''}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${CHART.width}" height="${height}" ` +
      `viewBox="0 0 ${CHART.width} ${height}" font-family="${CHART.font}" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="600">${xmlEscape(caption)}</text>`,
    ...grid,
    `<line x1="${plotLeft}" x2="${plotLeft + plotWidth}" y1="${axisY}" y2="${axisY}" stroke="#555"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Writing it all out

export interface ReportOptions {
  readonly scale?: Scale;
  /** An earlier run of the same suite, for the "vs previous" column. */
  readonly previous?: SuiteResult | undefined;
}

/** Print the table on stdout and write bench/out/<suite>.json and .svg; returns their paths. */
export function report(result: SuiteResult, options: ReportOptions = {}): { json: URL; svg: URL } {
  process.stdout.write(renderTable(result, options.previous));
  mkdirSync(OUT_DIR, { recursive: true });
  const json = new URL(`${result.suite}.json`, OUT_DIR);
  const svg = new URL(`${result.suite}.svg`, OUT_DIR);
  writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(svg, renderSvg(result, options.scale ?? 'auto'));
  return { json, svg };
}
