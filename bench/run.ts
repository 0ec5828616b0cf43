/**
 * Bench entry point (`npm run bench -- [suite...] [options]`, or `node dist-bench/bench/run.js`).
 *
 *   suite...             names from SUITES below; default: all of them, in order
 *   --quick              short budgets: a smoke test, not figures to publish
 *   --compare[=PATH]     add a "vs previous" column: median / the earlier median. PATH is a
 *                        directory of <suite>.json or one .json file; default: bench/out/ as it
 *                        was before this run
 *   --markdown[=PATH]    also write the markdown report (default bench/RESULTS.md)
 *   --scale=auto|linear|log   SVG time axis (auto: log when medians span over 100×)
 *   --list               print the suite names and exit
 *
 * Each suite prints its table on stdout and writes bench/out/<suite>.json and .svg; progress goes
 * to stderr. The process must exit by itself: if something still holds the event loop a few
 * seconds after the last suite, we name it on stderr.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SuiteRun } from './harness.js';
import {
  OUT_DIR,
  RESULTS_MD,
  progress,
  readSuiteJson,
  renderMarkdown,
  report,
  type Scale,
  type SuiteResult,
} from './report.js';
import * as channel from './channel.bench.js';
import * as peers from './peers.bench.js';
import * as taskCreate from './task-create.bench.js';
import * as machMsg from './mach-msg.bench.js';
import * as threads from './threads.bench.js';

interface SuiteEntry {
  readonly name: string;
  readonly run: SuiteRun;
}

/** The registry. Adding a suite: import its module above and add one line here. */
const SUITES: readonly SuiteEntry[] = [
  { name: 'peers', run: peers.run },
  { name: 'task-create', run: taskCreate.run },
  { name: 'mach-msg', run: machMsg.run },
  { name: 'channel', run: channel.run },
  { name: 'threads', run: threads.run },
];

interface Args {
  readonly names: string[];
  readonly quick: boolean;
  /** undefined: no comparison; null: bench/out/ before this run; else a path. */
  readonly compare: string | null | undefined;
  readonly markdown: string | undefined;
  readonly scale: Scale;
  readonly list: boolean;
}

function usage(message: string): never {
  process.stderr.write(
    `${message}\nusage: run.js [suite...] [--quick] [--compare[=PATH]] [--markdown[=PATH]] ` +
      `[--scale=auto|linear|log] [--list]\nsuites: ${SUITES.map((s) => s.name).join(', ')}\n`,
  );
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  const names: string[] = [];
  let quick = false;
  let compare: string | null | undefined;
  let markdown: string | undefined;
  let scale: Scale = 'auto';
  let list = false;
  for (const arg of argv) {
    const [flag, value] = arg.startsWith('--') ? splitFlag(arg) : [undefined, undefined];
    if (flag === undefined) names.push(arg);
    else if (flag === '--quick') quick = true;
    else if (flag === '--list') list = true;
    else if (flag === '--compare') compare = value ?? null;
    else if (flag === '--markdown') markdown = value ?? fileURLToPath(RESULTS_MD);
    else if (flag === '--scale' && (value === 'auto' || value === 'linear' || value === 'log')) scale = value;
    else usage(`unknown option ${arg}`);
  }
  for (const name of names) {
    if (!SUITES.some((s) => s.name === name)) usage(`unknown suite "${name}"`);
  }
  return { names, quick, compare, markdown, scale, list };
}

function splitFlag(arg: string): [string, string | undefined] {
  const eq = arg.indexOf('=');
  return eq < 0 ? [arg, undefined] : [arg.slice(0, eq), arg.slice(eq + 1)];
}

function previousFor(suite: string, compare: string | null | undefined): SuiteResult | undefined {
  if (compare === undefined) return undefined;
  if (compare === null) return readSuiteJson(new URL(`${suite}.json`, OUT_DIR));
  const path = resolve(compare);
  return readSuiteJson(path.endsWith('.json') ? path : resolve(path, `${suite}.json`));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.list) {
    process.stdout.write(`${SUITES.map((s) => s.name).join('\n')}\n`);
    return;
  }
  const chosen = args.names.length > 0 ? SUITES.filter((s) => args.names.includes(s.name)) : SUITES;
  const results: SuiteResult[] = [];
  for (const suite of chosen) {
    progress(`[${suite.name}]${args.quick ? ' --quick' : ''}`);
    // Read the earlier JSON before this run overwrites it.
    const previous = previousFor(suite.name, args.compare);
    const started = performance.now();
    try {
      const result = await suite.run({ quick: args.quick });
      const files = report(result, { scale: args.scale, previous });
      results.push(result);
      progress(
        `[${suite.name}] done in ${((performance.now() - started) / 1000).toFixed(1)} s → ` +
          `${fileURLToPath(files.json)}, ${fileURLToPath(files.svg)}`,
      );
    } catch (error) {
      process.exitCode = 1;
      progress(`[${suite.name}] FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
  }
  if (results.some((r) => r.comparisons.some((c) => c.tasks.some((t) => t.state !== 'completed')))) {
    process.exitCode = 1;
  }
  if (args.markdown !== undefined && results.length > 0) {
    writeFileSync(args.markdown, renderMarkdown(results));
    progress(`markdown → ${args.markdown}`);
  }
  // Fires only if something (a worker, a port, a timer) still keeps the process alive.
  setTimeout(() => {
    progress(`still running 5 s after the last suite; open: ${process.getActiveResourcesInfo().join(', ')}`);
  }, 5_000).unref();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
