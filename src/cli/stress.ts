/**
 * `norma stress [scenario|all]`: scenarios run by threads in tasks on every node, each driven
 * by a seed, with invariants checked while they run and after teardown (stress/*.ts). Exit
 * status 0 when every invariant held, 1 when one was violated (the replay line is printed),
 * 2 for bad usage.
 */
import { availableParallelism } from 'node:os';
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { MAX_NODES } from '../shared/types.js';
import { durationOption, integerOption, parseCommand, UsageError } from './args.js';
import { chaos } from './stress/chaos.js';
import { cloneStorm } from './stress/clone-storm.js';
import { brokenInvariant } from './stress/invariants.js';
import { pingPong } from './stress/ping-pong.js';
import { progressSink } from './stress/progress.js';
import { renderScenario, renderVerdict, replayLine, type RunReport } from './stress/report.js';
import { runScenario, type RunOptions, type Scenario, type ScenarioReport } from './stress/runner.js';
import { sharedMemory } from './stress/shared-memory.js';
import { teleportChurn } from './stress/teleport-churn.js';
import { INVARIANTS } from './stress/thread-kit.js';

/** Every scenario, in the order `all` runs them; chaos only with --chaos. */
export const SCENARIOS: readonly Scenario[] = [cloneStorm, teleportChurn, pingPong, sharedMemory, chaos];
const DEFAULT_DURATION_MS = 5000;

export const STRESS_USAGE = `usage: norma stress [scenario|all] [options]

Runs each scenario by threads in tasks on every node, its operations drawn from a seeded PRNG,
and checks invariants while it runs and after it tears down. Prints a table per scenario
(operations per second per call, latency p50/p90/p99/max) and what was checked.

scenarios:
${SCENARIOS.map((s) => `  ${s.name.padEnd(15)} ${s.summary}`).join('\n')}
  all             every scenario above, one after another (chaos only with --chaos); the default

options:
  --nodes N        nodes to boot, 2 to ${MAX_NODES} (default: os.availableParallelism(), at least 2)
  --duration T     how long each scenario runs: 500ms, 5s, 2m (default ${DEFAULT_DURATION_MS / 1000}s)
  --iterations N   operations per thread instead of a duration
  --seed S         the PRNG seed, 0 to 4294967295 (default: random, printed); a seed draws the same operations again
  --json           write the results as JSON on stdout (progress stays on stderr)
  --chaos          with all: run the chaos scenario too (it crashes a node)
  -h, --help       this text

invariants:
${Object.entries(INVARIANTS).map(([name, text]) => `  ${name.padEnd(18)} ${text}`).join('\n')}

exit status: 0 every invariant held; 1 one was violated (the line replaying the run is printed); 2 bad usage`;

interface StressOptions extends RunOptions {
  readonly scenarios: readonly Scenario[];
  readonly json: boolean;
}

export function parseStress(args: readonly string[]): StressOptions | 'help' {
  const { values, positionals } = parseCommand(() => parseArgs({
    args: [...args], allowPositionals: true, options: {
      nodes: { type: 'string' }, duration: { type: 'string' }, iterations: { type: 'string' }, seed: { type: 'string' },
      json: { type: 'boolean' }, chaos: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  }));
  if (values.help) return 'help';
  if (positionals.length > 1) throw new UsageError(`one scenario at a time, not '${positionals.join(' ')}'`);
  const name = positionals[0] ?? 'all';
  const scenarios = name === 'all' ? SCENARIOS.filter((s) => s !== chaos || values.chaos === true)
    : SCENARIOS.filter((s) => s.name === name);
  if (scenarios.length === 0) throw new UsageError(`no scenario '${name}': ${SCENARIOS.map((s) => s.name).join(', ')} or all`);
  if (values.duration !== undefined && values.iterations !== undefined) {
    throw new UsageError('--duration and --iterations exclude each other: give one');
  }
  return {
    scenarios,
    nodes: integerOption(values.nodes, 'nodes', Math.max(2, availableParallelism()), 2, MAX_NODES),
    iterations: integerOption(values.iterations, 'iterations', 0),
    durationMs: durationOption(values.duration, 'duration', DEFAULT_DURATION_MS),
    seed: integerOption(values.seed, 'seed', randomInt(2 ** 32), 0, 2 ** 32 - 1),
    json: values.json === true,
    broken: brokenInvariant(),
  };
}

/** `norma stress [scenario|all] [options]`: returns the exit status. */
export async function stressCommand(args: readonly string[]): Promise<number> {
  const options = parseStress(args);
  if (options === 'help') {
    console.log(STRESS_USAGE);
    return 0;
  }
  const progress = progressSink(process.stderr, false);
  const length = options.iterations > 0 ? `${options.iterations} iterations per thread` : `${options.durationMs / 1000} s each`;
  const header = `norma stress: ${options.scenarios.map((s) => s.name).join(', ')} on ${options.nodes} nodes, ${length}, seed ${options.seed}`;
  if (options.json) process.stderr.write(`${header}\n`);
  else console.log(header);
  const reports: ScenarioReport[] = [];
  try {
    for (const scenario of options.scenarios) reports.push(await runOne(scenario, options, progress));
  } finally {
    progress.stop();
  }
  const failed = reports.find((report) => !report.ok);
  const run: RunReport = {
    ok: failed === undefined, seed: options.seed, nodes: options.nodes, scenarios: reports,
    ...(failed === undefined ? {} : { replay: replayLine(failed) }),
  };
  if (options.json) {
    console.log(JSON.stringify(run, null, 2));
    if (!run.ok) process.stderr.write(`${renderVerdict(run)}\n`);
  } else {
    for (const report of reports) console.log(renderScenario(report));
    console.log(renderVerdict(run));
  }
  return run.ok ? 0 : 1;
}

/** One scenario; a run that throws (a host call the scenario did not expect to fail) is a violation too. */
async function runOne(scenario: Scenario, options: StressOptions, progress: ReturnType<typeof progressSink>): Promise<ScenarioReport> {
  try {
    return await runScenario(scenario, options, progress);
  } catch (error) {
    const detail = `the run stopped: ${error instanceof Error ? error.stack ?? error.message : String(error)}`;
    return {
      scenario: scenario.name, ok: false, nodes: options.nodes, seed: options.seed, iterations: options.iterations,
      durationMs: options.iterations > 0 ? 0 : options.durationMs, elapsedMs: 0, ops: 0, opsPerSec: 0,
      sequence: { digest: '', draws: 0 }, calls: [], counts: {},
      invariants: [{ name: 'expected-returns', checks: 1, ok: false, violations: [detail] }],
      statistics: { before: [], after: [] },
    };
  }
}
