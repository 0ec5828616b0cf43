/**
 * `norma stress` end to end, as a user runs it: the built dist/cli/main.js in a child process
 * (not a TTY, so progress comes as plain lines on stderr).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

interface Result { code: number; stdout: string; stderr: string }

function norma(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 << 20 },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr }));
  });
}

interface ScenarioJson {
  scenario: string; ok: boolean; ops: number; sequence: { digest: string; draws: number };
  calls: { call: string; count: number; opsPerSec: number; p50Us: number; p90Us: number; p99Us: number; maxUs: number }[];
  counts: Record<string, number>; invariants: { name: string; checks: number; ok: boolean; violations: string[] }[];
}
interface RunJson { ok: boolean; seed: number; nodes: number; scenarios: ScenarioJson[]; replay?: string }

const SHORT = ['--nodes', '2', '--iterations', '100', '--json'];
const ALL = ['clone-storm', 'teleport-churn', 'ping-pong', 'shared-memory', 'chaos'];

describe('norma stress', () => {
  it('runs every scenario (chaos too) to the end with every invariant checked and held, and writes it as JSON', async () => {
    const first = await norma(['stress', 'all', '--chaos', '--seed', '7', ...SHORT]);
    expect(first.code, first.stderr).toBe(0);
    const run = JSON.parse(first.stdout) as RunJson;
    expect(run).toMatchObject({ ok: true, seed: 7, nodes: 2 });
    expect(run.scenarios.map((s) => s.scenario)).toEqual(ALL);
    for (const scenario of run.scenarios) {
      expect(scenario.ok, scenario.scenario).toBe(true);
      expect(scenario.ops, scenario.scenario).toBeGreaterThan(0);
      expect(scenario.calls.length, scenario.scenario).toBeGreaterThan(0);
      for (const call of scenario.calls) expect(call.maxUs).toBeGreaterThanOrEqual(call.p50Us);
      const teardown = scenario.invariants.find((i) => i.name === 'teardown-clean');
      expect(teardown, scenario.scenario).toMatchObject({ ok: true });
      expect(teardown!.checks).toBeGreaterThan(0);
    }
    const by = Object.fromEntries(run.scenarios.map((s) => [s.scenario, s]));
    expect(Object.keys(by['clone-storm']!.counts).some((key) => key.endsWith('KERN_RESOURCE_SHORTAGE'))).toBe(true);
    expect(by['teleport-churn']!.counts.teleports).toBeGreaterThan(0);
    expect(by.chaos!.invariants.find((i) => i.name === 'node-down-answers')).toMatchObject({ ok: true });
    expect(first.stderr).toContain('stress clone-storm: started');

    // The same seed draws the same operations: every scenario's sequence digest again.
    const again = await norma(['stress', 'all', '--chaos', '--seed', '7', ...SHORT]);
    expect(again.code, again.stderr).toBe(0);
    const digests = (r: RunJson) => r.scenarios.map((s) => [s.scenario, s.sequence]);
    expect(digests(JSON.parse(again.stdout) as RunJson)).toEqual(digests(run));
    const other = JSON.parse((await norma(['stress', 'shared-memory', '--seed', '8', ...SHORT])).stdout) as RunJson;
    expect(other.scenarios[0]!.sequence.digest).not.toBe(by['shared-memory']!.sequence.digest);
  }, 120_000);

  it('exits 1 naming the violated invariant and prints the line that replays the run', async () => {
    const broken = await norma(['stress', 'ping-pong', '--nodes', '2', '--iterations', '20', '--seed', '5'], { NORMA_STRESS_BREAK: 'no-loss' });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain('FAIL no-loss');
    expect(broken.stdout).toMatch(/invariant violated: no-loss in ping-pong: .*broken on purpose/);
    expect(broken.stdout).toContain('replay: norma stress ping-pong --nodes 2 --seed 5 --iterations 20');

    const json = await norma(['stress', 'shared-memory', '--nodes', '2', '--iterations', '20', '--seed', '5', '--json'],
      { NORMA_STRESS_BREAK: 'teardown-clean' });
    expect(json.code).toBe(1);
    const run = JSON.parse(json.stdout) as RunJson;
    expect(run).toMatchObject({ ok: false, replay: 'norma stress shared-memory --nodes 2 --seed 5 --iterations 20' });
    expect(run.scenarios[0]!.invariants.find((i) => i.name === 'teardown-clean')).toMatchObject({ ok: false });
    expect(json.stderr).toContain('invariant violated: teardown-clean');
  }, 60_000);

  it.each([
    [['stress', '--nodes', '0'], '--nodes'],
    [['stress', '--nodes', 'two'], '--nodes'],
    [['stress', '--duration', 'soon'], '--duration'],
    [['stress', '--iterations', '1.5'], '--iterations'],
    [['stress', '--seed', '4294967296'], '--seed'],
    [['stress', '--iterations', '5', '--duration', '1s'], '--duration and --iterations'],
    [['stress', '--tasks', '2'], "'--tasks'"],
    [['stress', 'everything'], "no scenario 'everything'"],
    [['demo', '--nodes', '-3'], '--nodes'],
  ])('refuses %j naming what is wrong (exit 2)', async (args, named) => {
    const result = await norma(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(named);
  });

  it('refuses a NORMA_STRESS_BREAK that names no invariant', async () => {
    const result = await norma(['stress', 'ping-pong', '--iterations', '1'], { NORMA_STRESS_BREAK: 'nonsense' });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('NORMA_STRESS_BREAK must name an invariant');
  });

  it('answers --help per command, and lists the commands', async () => {
    const stress = await norma(['stress', '--help']);
    expect(stress.code).toBe(0);
    expect(stress.stdout).toMatch(/^usage: norma stress/);
    for (const name of [...ALL, '--duration', '--iterations', '--seed', '--json', '--chaos', 'teardown-clean']) expect(stress.stdout).toContain(name);
    const demo = await norma(['demo', '-h']);
    expect(demo.stdout).toMatch(/^usage: norma demo/);
    const top = await norma(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['demo', 'stress', 'bench']) expect(top.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
  });
});
