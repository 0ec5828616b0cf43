/**
 * What the soak (soak.ts) makes of its samples: one record per window, the line printed for each,
 * the verdict, and bench/out/soak.{json,csv,svg}. Nothing here runs the workload.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { OUT_DIR, formatTime, type MachineInfo } from './report.js';

/** One sampling window: memory at its end, latency and counts within it. */
export interface SoakWindow {
  /** Seconds since the load started, at the window's end, and the window's length. */
  readonly elapsedS: number;
  readonly durationS: number;
  /** Each node isolate's heap in use (after a full GC when `gc`), MB, by node. */
  readonly heapMB: readonly number[];
  /** The same just before that GC, garbage included; and the heap's size. */
  readonly heapBeforeGcMB: readonly number[];
  readonly heapTotalMB: readonly number[];
  /** Event-loop utilization of each node's thread over the window, 0..1. */
  readonly busy: readonly number[];
  readonly hostHeapMB: number;
  readonly rssMB: number;
  readonly migrations: number;
  readonly migrationP50Ms: number;
  readonly migrationP99Ms: number;
  readonly migrationMaxMs: number;
  /** Sender tasks created, messages they sent, messages the service drained, ports churned. */
  readonly tasks: number;
  readonly messages: number;
  readonly drained: number;
  readonly ports: number;
  readonly tasksTotal: number;
  readonly portsTotal: number;
  /** Failures in the window by Mach code (or error name) and where. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface SoakOptions {
  readonly minutes: number;
  readonly intervalS: number;
  readonly senders: number;
  readonly messages: number;
  readonly periodMs: number;
  readonly churnBatch: number;
  readonly quick: boolean;
}

/**
 * When a run counts as flat. Generous: two shared cores make single windows noisy. Heap is judged
 * on the nodes together: what the service's port holds moves with it, so one node's heap swings
 * by that much with the node that holds it at the sample.
 */
export const LIMITS = {
  /** Last window's heap over the first window's, all nodes together ... */
  heapRatio: 1.5,
  /** ... unless it grew by less than this (JIT code and GC slack on a heap of a few MB). */
  heapSlackMB: 4,
  /**
   * The median of the windows' migration p50 over the last quarter of the run, over the same
   * median over the first quarter (one window's p50 swings 2-3x on two shared cores) ...
   */
  migrationRatio: 2,
  /** ... unless it grew by less than this. */
  migrationSlackMs: 2,
} as const;

export interface Verdict {
  readonly flat: boolean;
  readonly reasons: readonly string[];
  /** Last window over first: the nodes' heaps together, and each node's. */
  readonly heapRatio: number;
  readonly nodeHeapRatio: readonly number[];
  readonly migrationP50Ratio: number;
  readonly migrationP99Ratio: number;
  /** Medians of the windows' migration p50 over the first and the last quarter of the run. */
  readonly earlyP50Ms: number;
  readonly lateP50Ms: number;
}

export interface SoakResult {
  readonly machine: MachineInfo;
  readonly options: SoakOptions;
  readonly gc: boolean;
  readonly windows: readonly SoakWindow[];
  readonly totals: {
    readonly tasks: number;
    readonly messages: number;
    readonly drained: number;
    readonly ports: number;
    readonly migrations: number;
    readonly errors: Readonly<Record<string, number>>;
  };
  readonly verdict: Verdict;
}

/** Nearest-rank percentile of `values` (NaN for none). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function addCounts(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const mb = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(1)} MB` : '—');
const count = (value: number): string =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)} M` : value >= 1e4 ? `${(value / 1e3).toFixed(1)} k` : String(value);
const ms = (value: number): string => formatTime(value);
const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '—');

const COLUMNS = [
  ['time', 6], ['heap n0', 9], ['heap n1', 9], ['host', 9], ['busy n0/n1', 11], ['migr', 5],
  ['p50', 9], ['p99', 9], ['tasks/s', 8], ['tasks', 9], ['ports/s', 8], ['ports', 9], ['drained', 8],
] as const;

function row(cells: readonly string[]): string {
  const aligned = cells.slice(0, COLUMNS.length).map((cell, i) => cell.padStart(COLUMNS[i]![1])).join(' ');
  return cells.length > COLUMNS.length ? `${aligned}  ${cells.slice(COLUMNS.length).join(' ')}` : aligned;
}

export function header(): string {
  return row([...COLUMNS.map(([head]) => head), 'errors']);
}

/** The line printed for a window. */
export function line(w: SoakWindow): string {
  const errors = Object.entries(w.errors).map(([key, n]) => `${key} ×${n}`).join(', ') || '—';
  return row([
    `${w.elapsedS.toFixed(0)} s`, mb(w.heapMB[0] ?? NaN), mb(w.heapMB[1] ?? NaN), mb(w.hostHeapMB),
    w.busy.map((b) => `${Math.round(b * 100)}%`).join('/'), String(w.migrations),
    ms(w.migrationP50Ms), ms(w.migrationP99Ms), (w.tasks / w.durationS).toFixed(0), count(w.tasksTotal),
    count(Math.round(w.ports / w.durationS)), count(w.portsTotal), count(w.drained), errors,
  ]);
}

/** Flat: every node's heap and the migration p50 within LIMITS of the first window, and no error. */
export function judge(windows: readonly SoakWindow[], errors: Readonly<Record<string, number>>,
  messages: number, drained: number): Verdict {
  const reasons: string[] = [];
  const first = windows[0];
  const last = windows.at(-1);
  if (first === undefined || last === undefined || windows.length < 2) {
    return {
      flat: false, reasons: ['fewer than two windows'], heapRatio: NaN, nodeHeapRatio: [], migrationP50Ratio: NaN,
      migrationP99Ratio: NaN, earlyP50Ms: NaN, lateP50Ms: NaN,
    };
  }
  const heapRatio = first.heapMB.map((before, node) => (last.heapMB[node] ?? NaN) / before);
  const before = sum(first.heapMB);
  const after = sum(last.heapMB);
  if (!(after <= before * LIMITS.heapRatio || after - before < LIMITS.heapSlackMB)) {
    reasons.push(`node heap ${mb(before)} -> ${mb(after)}`);
  }
  const quarter = Math.max(1, Math.floor(windows.length / 4));
  const earlyP50Ms = median(windows.slice(0, quarter).map((w) => w.migrationP50Ms));
  const lateP50Ms = median(windows.slice(-quarter).map((w) => w.migrationP50Ms));
  const p50 = lateP50Ms / earlyP50Ms;
  if (!(p50 <= LIMITS.migrationRatio || lateP50Ms - earlyP50Ms < LIMITS.migrationSlackMs)) {
    reasons.push(`migration p50 (median of a quarter's windows) ${ms(earlyP50Ms)} -> ${ms(lateP50Ms)}`);
  }
  const failures = Object.values(errors).reduce((a, b) => a + b, 0);
  if (failures > 0) reasons.push(`${failures} error(s)`);
  if (drained !== messages) reasons.push(`service drained ${drained} of ${messages} messages`);
  if (last.tasks === 0) reasons.push('no task created in the last window');
  if (last.migrations === 0) reasons.push('no migration in the last window');
  return {
    flat: reasons.length === 0, reasons, heapRatio: after / before, nodeHeapRatio: heapRatio, migrationP50Ratio: p50,
    migrationP99Ratio: last.migrationP99Ms / first.migrationP99Ms, earlyP50Ms, lateP50Ms,
  };
}

export function renderVerdict(result: SoakResult): string {
  const { windows, totals, verdict } = result;
  const first = windows[0];
  const last = windows.at(-1);
  const out: string[] = [];
  if (first !== undefined && last !== undefined) {
    out.push(`first window (${first.elapsedS.toFixed(0)} s) -> last window (${last.elapsedS.toFixed(0)} s):`);
    out.push(`  node heap${result.gc ? ' after GC' : ''}, all nodes: ${mb(sum(first.heapMB))} -> ${mb(sum(last.heapMB))} ` +
      `(${ratio(verdict.heapRatio)}); ` + first.heapMB.map((before, node) =>
      `node ${node} ${mb(before)} -> ${mb(last.heapMB[node] ?? NaN)}`).join(', '));
    out.push(`  node heap before GC (garbage included): ` + first.heapBeforeGcMB.map((before, node) =>
      `node ${node} ${mb(before)} -> ${mb(last.heapBeforeGcMB[node] ?? NaN)}`).join(', ') +
      `; largest in the run ${mb(Math.max(...windows.flatMap((w) => w.heapBeforeGcMB)))}`);
    out.push(`  host heap: ${mb(first.hostHeapMB)} -> ${mb(last.hostHeapMB)}; process RSS ${mb(first.rssMB)} -> ${mb(last.rssMB)}`);
    out.push(`  migration p50, median over the first and last quarter of windows: ${ms(verdict.earlyP50Ms)} -> ` +
      `${ms(verdict.lateP50Ms)} (${ratio(verdict.migrationP50Ratio)}); first and last window ` +
      `${ms(first.migrationP50Ms)} -> ${ms(last.migrationP50Ms)}; ` +
      `p99: ${ms(first.migrationP99Ms)} -> ${ms(last.migrationP99Ms)} (${ratio(verdict.migrationP99Ratio)})`);
  }
  out.push(`  totals: ${totals.tasks} sender tasks, ${totals.messages} messages sent, ${totals.drained} drained, ` +
    `${totals.ports} ports made and destroyed, ${totals.migrations} migrations`);
  const errors = Object.entries(totals.errors);
  out.push(`  errors: ${errors.length === 0 ? 'none' : errors.map(([key, n]) => `${key} ×${n}`).join(', ')}`);
  out.push(verdict.flat ? 'FLAT: heap and migration time flat, no error' : `NOT FLAT: ${verdict.reasons.join('; ')}`);
  return `${out.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Files

const CSV_COLUMNS: readonly (readonly [string, (w: SoakWindow) => string | number])[] = [
  ['elapsed_s', (w) => w.elapsedS.toFixed(1)],
  ['duration_s', (w) => w.durationS.toFixed(2)],
  ['heap_mb_n0', (w) => w.heapMB[0]?.toFixed(2) ?? ''],
  ['heap_mb_n1', (w) => w.heapMB[1]?.toFixed(2) ?? ''],
  ['heap_before_gc_mb_n0', (w) => w.heapBeforeGcMB[0]?.toFixed(2) ?? ''],
  ['heap_before_gc_mb_n1', (w) => w.heapBeforeGcMB[1]?.toFixed(2) ?? ''],
  ['heap_total_mb_n0', (w) => w.heapTotalMB[0]?.toFixed(2) ?? ''],
  ['heap_total_mb_n1', (w) => w.heapTotalMB[1]?.toFixed(2) ?? ''],
  ['busy_n0', (w) => w.busy[0]?.toFixed(3) ?? ''],
  ['busy_n1', (w) => w.busy[1]?.toFixed(3) ?? ''],
  ['host_heap_mb', (w) => w.hostHeapMB.toFixed(2)],
  ['rss_mb', (w) => w.rssMB.toFixed(1)],
  ['migrations', (w) => w.migrations],
  ['migration_p50_ms', (w) => w.migrationP50Ms.toFixed(3)],
  ['migration_p99_ms', (w) => w.migrationP99Ms.toFixed(3)],
  ['migration_max_ms', (w) => w.migrationMaxMs.toFixed(3)],
  ['tasks', (w) => w.tasks],
  ['messages', (w) => w.messages],
  ['drained', (w) => w.drained],
  ['ports', (w) => w.ports],
  ['tasks_total', (w) => w.tasksTotal],
  ['ports_total', (w) => w.portsTotal],
  ['errors', (w) => `"${Object.entries(w.errors).map(([k, n]) => `${k}=${n}`).join('; ')}"`],
];

function renderCsv(windows: readonly SoakWindow[]): string {
  return [CSV_COLUMNS.map(([head]) => head).join(','),
    ...windows.map((w) => CSV_COLUMNS.map(([, cell]) => cell(w)).join(','))].join('\n') + '\n';
}

/** Writes bench/out/soak.json, .csv and .svg; returns their URLs. */
export function writeSoak(result: SoakResult): URL[] {
  mkdirSync(OUT_DIR, { recursive: true });
  const files: [URL, string][] = [
    [new URL('soak.json', OUT_DIR), `${JSON.stringify(result, null, 2)}\n`],
    [new URL('soak.csv', OUT_DIR), renderCsv(result.windows)],
    [new URL('soak.svg', OUT_DIR), renderSoakSvg(result)],
  ];
  for (const [url, text] of files) writeFileSync(url, text);
  return files.map(([url]) => url);
}

// ---------------------------------------------------------------------------------------------
// SVG: three panels of lines over time (report.ts draws bars of one run; this is a series)

interface Series {
  readonly name: string;
  readonly color: string;
  readonly values: readonly number[];
}

const PANEL = { width: 960, height: 190, left: 70, right: 150, top: 28, bottom: 26, font: 'ui-sans-serif, system-ui, sans-serif' } as const;

function xmlEscape(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

function niceCeil(value: number): number {
  const decade = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * decade >= value) return step * decade;
  return 10 * decade;
}

/** One panel at vertical offset `top`: lines over the windows' elapsed times, log scale when the values span over 100×. */
function panel(top: number, title: string, unit: (v: number) => string, xs: readonly number[], series: readonly Series[]): string[] {
  const values = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && v > 0);
  const log = values.length > 0 && Math.max(...values) / Math.min(...values) > 100;
  const lo = log ? 10 ** Math.floor(Math.log10(Math.min(...values))) : 0;
  const hi = values.length === 0 ? 1 : log ? 10 ** Math.ceil(Math.log10(Math.max(...values))) : niceCeil(Math.max(...values));
  const plotW = PANEL.width - PANEL.left - PANEL.right;
  const plotH = PANEL.height - PANEL.top - PANEL.bottom;
  const xMax = Math.max(1, ...xs);
  const x = (s: number): number => PANEL.left + (s / xMax) * plotW;
  const y = (v: number): number => {
    const clamped = Math.min(Math.max(v, log ? lo : 0), hi);
    const f = log ? (Math.log10(clamped) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : clamped / hi;
    return top + PANEL.top + (1 - f) * plotH;
  };
  const ticks: number[] = [];
  if (log) for (let v = lo; v <= hi * 1.0001; v *= 10) ticks.push(v);
  else for (let i = 0; i <= 4; i++) ticks.push((hi * i) / 4);
  const out = [`<text x="8" y="${top + 18}" font-weight="600">${xmlEscape(title)}${log ? ' (log scale)' : ''}</text>`];
  for (const v of ticks) {
    out.push(`<line x1="${PANEL.left}" x2="${PANEL.left + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e0e0e0"/>`,
      `<text x="${PANEL.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${xmlEscape(unit(v))}</text>`);
  }
  const axisY = top + PANEL.top + plotH;
  const step = niceCeil(xMax / 8);
  for (let s = 0; s <= xMax; s += step) {
    out.push(`<text x="${x(s).toFixed(1)}" y="${axisY + 16}" text-anchor="middle" fill="#555">${s} s</text>`);
  }
  out.push(`<line x1="${PANEL.left}" x2="${PANEL.left + plotW}" y1="${axisY}" y2="${axisY}" stroke="#555"/>`);
  series.forEach((s, i) => {
    const points = s.values.map((v, j) => (Number.isFinite(v) ? `${x(xs[j] ?? 0).toFixed(1)},${y(v).toFixed(1)}` : null))
      .filter((p) => p !== null);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.8" points="${points.join(' ')}"/>`,
      `<text x="${PANEL.left + plotW + 12}" y="${top + PANEL.top + 12 + i * 16}" fill="${s.color}">${xmlEscape(s.name)}</text>`);
  });
  return out;
}

export function renderSoakSvg(result: SoakResult): string {
  const w = result.windows;
  const xs = w.map((window) => window.elapsedS);
  const perSecond = (pick: (window: SoakWindow) => number) => w.map((window) => pick(window) / window.durationS);
  const caption = `soak: ${result.options.minutes} min, migration every ${result.options.periodMs} ms, ` +
    `${result.options.senders} sender loops · ${result.machine.cpu} · ${result.machine.parallelism} threads · ` +
    `Node ${result.machine.node} · ${result.machine.date.slice(0, 10)} · ${result.verdict.flat ? 'flat' : 'NOT flat'}`;
  const panels = [
    panel(30, `node heap in use${result.gc ? ' after GC' : ''}`, (v) => `${v.toPrecision(3)} MB`, xs, [
      { name: 'node 0', color: '#3b78e7', values: w.map((window) => window.heapMB[0] ?? NaN) },
      { name: 'node 1', color: '#e8710a', values: w.map((window) => window.heapMB[1] ?? NaN) },
      { name: 'nodes together', color: '#202124', values: w.map((window) => sum(window.heapMB)) },
      { name: 'host', color: '#9aa0a6', values: w.map((window) => window.hostHeapMB) },
    ]),
    panel(30 + PANEL.height, 'service migration time', (v) => formatTime(v), xs, [
      { name: 'p50', color: '#3b78e7', values: w.map((window) => window.migrationP50Ms) },
      { name: 'p99', color: '#c5221f', values: w.map((window) => window.migrationP99Ms) },
    ]),
    panel(30 + 2 * PANEL.height, 'churn per second', (v) => count(Math.round(v)), xs, [
      { name: 'sender tasks', color: '#188038', values: perSecond((window) => window.tasks) },
      { name: 'ports made', color: '#9334e6', values: perSecond((window) => window.ports) },
      { name: 'messages drained', color: '#9aa0a6', values: perSecond((window) => window.drained) },
    ]),
  ];
  const height = 30 + 3 * PANEL.height;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${PANEL.width}" height="${height}" viewBox="0 0 ${PANEL.width} ${height}" ` +
      `font-family="${PANEL.font}" font-size="12">`,
    '<rect width="100%" height="100%" fill="#fff"/>',
    `<text x="8" y="20" font-size="14" font-weight="600">${xmlEscape(caption)}</text>`,
    ...panels.flat(),
    '</svg>',
    '',
  ].join('\n');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}
