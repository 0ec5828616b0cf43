/**
 * `norma bench [suite...]`: the front door of the benchmark suites (bench/, built into
 * dist/bench/). This file parses and checks the command line; the runner, the suites and their
 * reports live in dist/bench/, loaded only when a run starts, so the package works without them
 * for everything else. Runs standalone too: `node dist/cli/bench.js [options]`.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

/** What this file uses of dist/bench/run.js and compare.js (compiled separately, from bench/). */
interface BenchRunner {
  readonly SUITES: readonly { readonly name: string; readonly about: string }[];
  runBench(options: {
    names: readonly string[]; quick: boolean; outDir: string; scale: 'auto' | 'linear' | 'log';
    markdown?: string | undefined; previous?: readonly unknown[] | undefined; write: (text: string) => void;
  }): Promise<{ readonly regressions?: number }>;
  hadErrors(run: unknown): boolean;
}
interface BenchCompare {
  loadPrevious(path: string): unknown[];
  readonly NOISE_FLOOR: number;
}

const HELP = `usage: norma bench [suite...] [options]

Runs the benchmark suites: each puts norma's calls and the peers a user would reach for instead
(raw postMessage, the SharedArrayBuffer + Atomics floor, comlink, piscina) in the same tinybench
run, and prints per comparison a table (median, p75, ops/s, ratio to the comparison's baseline),
then the suite's targets (the ratios the issues ask for: goal, this run, met?). Each suite also
writes <out>/<suite>.json and a self-contained <out>/<suite>.svg chart.

suites (default: all, in this order):
%SUITES%

options:
  --quick              short runs: a smoke test, not figures to publish
  --json               print the whole run as one JSON document on stdout (tables go to stderr)
  --compare PATH       compare with an earlier run: a --json document, a suite's JSON, or an
                       --out directory. Each task is compared by its ratio to its baseline in the
                       same run (the baseline itself by its median); a change counts as a
                       regression when the two runs' interquartile ranges no longer overlap, and
                       never below ±%FLOOR%%. Exits 3 when any task regressed.
  --out DIR            where <suite>.json and .svg go (default ./norma-bench)
  --markdown PATH      also write every table as markdown (bench/RESULTS.md's format)
  --scale auto|linear|log   the charts' time axis (auto: log when medians span over 100x)
  --list               print the suite names and exit
  -h, --help           this text

exit status: 0 done; 1 a suite or task failed; 2 bad command line; 3 a regression (--compare).
Peers whose package is not installed are skipped with a message.`;

const SCALES = ['auto', 'linear', 'log'] as const;

function fail(message: string): number {
  console.error(`norma bench: ${message}\nTry 'norma bench --help'.`);
  return 2;
}

async function load<T>(file: string): Promise<T> {
  return await import(new URL(`../bench/${file}`, import.meta.url).href) as T;
}

export async function benchCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        compare: { type: 'string' },
        out: { type: 'string' },
        markdown: { type: 'string' },
        scale: { type: 'string' },
        list: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // parseArgs names the option: "Unknown option '--x'", "Option '--out <value>' argument missing".
    return fail(error instanceof Error ? error.message : String(error));
  }
  const { values, positionals: names } = parsed;

  let runner: BenchRunner;
  let comparing: BenchCompare;
  try {
    [runner, comparing] = await Promise.all([load<BenchRunner>('run.js'), load<BenchCompare>('compare.js')]);
  } catch (error) {
    const why = `the bench suites could not be loaded (in the repository: npm run build:bench): ` +
      `${error instanceof Error ? error.message : String(error)}`;
    if (values.help) console.log(HELP.replace('%SUITES%', `  (${why})`).replace('%FLOOR%', '10'));
    else console.error(`norma bench: ${why}`);
    return values.help ? 0 : 1;
  }
  const suites = runner.SUITES;
  if (values.help) {
    const width = Math.max(...suites.map((s) => s.name.length));
    console.log(HELP.replace('%SUITES%', suites.map((s) => `  ${s.name.padEnd(width)}  ${s.about}`).join('\n'))
      .replace('%FLOOR%', String(comparing.NOISE_FLOOR * 100)));
    return 0;
  }
  if (values.list) {
    console.log(suites.map((s) => s.name).join('\n'));
    return 0;
  }
  const unknown = names.find((name) => !suites.some((s) => s.name === name));
  if (unknown !== undefined) return fail(`unknown suite '${unknown}' (suites: ${suites.map((s) => s.name).join(', ')})`);
  const scale = values.scale ?? 'auto';
  if (!(SCALES as readonly string[]).includes(scale)) return fail(`--scale must be one of ${SCALES.join(', ')}, not '${scale}'`);
  for (const option of ['out', 'markdown', 'compare'] as const) {
    if (values[option] === '') return fail(`--${option} needs a path`);
  }
  let previous: unknown[] | undefined;
  if (values.compare !== undefined) {
    try {
      previous = comparing.loadPrevious(resolve(values.compare));
    } catch (error) {
      return fail(`--compare ${values.compare}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  // With --json, stdout carries the document alone.
  const write = values.json
    ? (text: string) => { process.stderr.write(text); }
    : (text: string) => { process.stdout.write(text); };
  const run = await runner.runBench({
    names,
    quick: values.quick ?? false,
    outDir: resolve(values.out ?? 'norma-bench'),
    scale: scale as (typeof SCALES)[number],
    markdown: values.markdown === undefined ? undefined : resolve(values.markdown),
    previous,
    write,
  });
  if (values.json) process.stdout.write(`${JSON.stringify(run, null, 2)}\n`);
  if (runner.hadErrors(run)) return 1;
  return (run.regressions ?? 0) > 0 ? 3 : 0;
}

/** Run directly (node dist/cli/bench.js), not when main.js imports it. */
function isEntry(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isEntry()) {
  benchCommand(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (error: unknown) => {
    console.error(`norma bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  });
}
