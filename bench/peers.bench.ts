/**
 * The peers alone, side by side: what a worker round trip and a memory copy cost on this machine
 * before any kernel is involved. Useful on its own and as the bench smoke test.
 */
import { compare, type SuiteOptions } from './harness.js';
import { suiteResult, type SuiteResult } from './report.js';
import { atomicsPingPong, comlinkEcho, piscinaRun, postMessageEcho, sabCopy } from './peers.js';

const MiB = 2 ** 20;

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const rounds = options.quick ? 200 : 1000;
  const roundTrip = await compare({
    suite: 'peers',
    title: 'round trip to a worker',
    baseline: 'postMessage echo',
    options,
    tasks: [
      postMessageEcho(),
      atomicsPingPong({ rounds }),
      atomicsPingPong({ rounds, spin: 20_000 }),
      comlinkEcho(),
      piscinaRun(),
    ],
  });
  const copy = await compare({
    suite: 'peers',
    title: 'copy into a SharedArrayBuffer',
    baseline: 'SAB copy 1 MiB',
    options,
    tasks: [
      sabCopy(1 * MiB),
      sabCopy(16 * MiB),
      sabCopy(1 * MiB, { fresh: false }),
      sabCopy(16 * MiB, { fresh: false }),
    ],
  });
  return suiteResult('peers', options, [roundTrip, copy]);
}
