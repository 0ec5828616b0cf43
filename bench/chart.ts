/**
 * The self-contained SVG bar chart of a suite: one bar per task (median, p75 whisker), grouped by
 * comparison, on one time axis. No scripts, fonts or external references.
 */
import { formatBandwidth, formatRatio, formatTime, type SuiteResult, type TaskRow } from './report.js';

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
