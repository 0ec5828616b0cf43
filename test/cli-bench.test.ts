/**
 * `norma bench` end to end through the built entry (dist/cli/bench.js, the command main.js runs
 * for `norma bench`): a --quick run of the peers suite with --json parsed; --compare against a
 * doctored copy of that run flags the doctored task and exits 3; bad options are refused naming
 * the option. Needs dist/bench/ (npm run build:bench; `npm test` builds it).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const entry = join(root, 'dist', 'cli', 'bench.js');

interface Row { name: string; state: string; p25Ms: number; medianMs: number; p75Ms: number }
interface Doc {
  tool: string;
  quick: boolean;
  suites: { suite: string; comparisons: { title: string; baseline: string; tasks: Row[] }[] }[];
  targets: unknown[];
  skipped: unknown[];
  failed: unknown[];
  changes?: { suite: string; task: string; verdict: string; basis: string }[];
  regressions?: number;
}

/** Runs the entry; resolves with the exit code and output whatever the code. */
function bench(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [entry, ...args], { cwd: root, timeout: 120_000, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

let dir: string;
let first: Doc;

beforeAll(async () => {
  if (!existsSync(join(root, 'dist', 'bench', 'run.js'))) throw new Error('dist/bench/ is not built: npm run build:bench');
  dir = await mkdtemp(join(tmpdir(), 'norma-bench-'));
  const run = await bench(['peers', '--quick', '--json', '--out', join(dir, 'first')]);
  expect(run.code, run.stderr).toBe(0);
  first = JSON.parse(run.stdout) as Doc;
}, 150_000);

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('norma bench', () => {
  it('--quick peers --json prints one document with every peer side by side, and writes the JSON and a self-contained SVG', async () => {
    expect(first).toMatchObject({ tool: 'norma bench', quick: true, skipped: [], failed: [] });
    expect(first.suites.map((s) => s.suite)).toEqual(['peers']);
    const roundTrip = first.suites[0]!.comparisons.find((c) => c.title === 'round trip to a worker')!;
    expect(roundTrip.tasks.map((t) => t.name)).toEqual(expect.arrayContaining(
      ['postMessage echo', 'Atomics ping-pong', 'Atomics ping-pong, spin then wait', 'comlink call', 'piscina run']));
    for (const task of roundTrip.tasks) {
      expect(task.state).toBe('completed');
      expect(task.p25Ms).toBeLessThanOrEqual(task.medianMs);
      expect(task.medianMs).toBeLessThanOrEqual(task.p75Ms);
    }
    const saved = JSON.parse(await readFile(join(dir, 'first', 'peers.json'), 'utf8')) as { suite: string };
    expect(saved.suite).toBe('peers');
    const svg = await readFile(join(dir, 'first', 'peers.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).not.toMatch(/<script|href=|url\(/);
    expect(svg).toContain('comlink call');
  });

  it('--compare flags a task whose earlier run was doctored to be 10,000 times faster, and exits 3', async () => {
    const doctored = structuredClone(first);
    const comlink = doctored.suites[0]!.comparisons.flatMap((c) => c.tasks).find((t) => t.name === 'comlink call')!;
    for (const key of ['p25Ms', 'medianMs', 'p75Ms'] as const) comlink[key] /= 10_000;
    const previous = join(dir, 'previous.json');
    await writeFile(previous, JSON.stringify(doctored));
    const run = await bench(['peers', '--quick', '--json', '--out', join(dir, 'second'), '--compare', previous]);
    expect(run.code, run.stderr).toBe(3);
    const second = JSON.parse(run.stdout) as Doc;
    expect(second.regressions).toBeGreaterThanOrEqual(1);
    expect(second.changes).toContainEqual(expect.objectContaining({ suite: 'peers', task: 'comlink call', verdict: 'regression', basis: 'ratio' }));
    expect(run.stderr).toMatch(/comlink call .*REGRESSION/);
  }, 150_000);

  it.each([
    [['--frob'], /--frob/],
    [['--scale', 'big'], /--scale/],
    [['--out'], /--out/],
    [['--compare', 'no-such-run.json'], /--compare/],
    [['no-such-suite'], /unknown suite 'no-such-suite'/],
  ])('refuses %j naming what is wrong, with exit 2', async (args, message) => {
    const run = await bench(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe('');
  });

  it('--help describes the command and its suites; --list names the suites', async () => {
    const help = await bench(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: norma bench \[suite\.\.\.\]/);
    for (const option of ['--quick', '--json', '--compare', '--list', '--out']) expect(help.stdout).toContain(option);
    const list = await bench(['--list']);
    expect(list.stdout.trim().split('\n')).toEqual(['peers', 'task-create', 'mach-msg', 'ipc-scale', 'channel', 'threads', 'cluster']);
  });

  it('skips a peer whose package is not installed, with a message naming the package', async () => {
    const peers = await import(new URL('../dist/bench/peers.js', import.meta.url).href) as {
      optionalPackage(name: string): { unavailable(): Promise<string | undefined> };
    };
    expect(await peers.optionalPackage('comlink').unavailable()).toBeUndefined();
    expect(await peers.optionalPackage('no-such-package-for-norma').unavailable()).toMatch(/needs the package no-such-package-for-norma/);
  });
});
