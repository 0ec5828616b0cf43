/**
 * shared-memory contention: a region cloned onto every node, two threads in the task on each
 * node; every round each thread adds seeded amounts to counters its PRNG picks (Atomics.add),
 * adds the same total to its own word, and meets the others at the library Barrier. The last
 * to arrive checks, while the run goes on, that the counters hold exactly what every thread
 * says it added; the host checks it again at the end.
 */
import { Barrier, BARRIER_BYTES } from '../../shared/barrier.js';
import type { ThreadContext } from '../../shared/context.js';
import { VM_INHERIT_SHARE } from '../../shared/constants.js';
import type { Thread } from '../../thread.js';
import { Prng } from './prng.js';
import type { Scenario, ScenarioRun } from './runner.js';
import { CONTROL_BYTES, CTL, Recorder, type ThreadReport } from './thread-kit.js';

const THREADS_PER_NODE = 2;
/** Region layout, Int32 words: the counters, the barrier, the stop decision, each thread's total. */
const COUNTERS = 8;
const BARRIER_WORD = 8;
const DECIDED = 10;
const TOTALS = 16;

type Contended = ThreadReport & { added: number; rounds: number };

export async function contend(context: ThreadContext, control: number, region: number, index: number, parties: number,
  iterations: number, seed: number): Promise<Contended> {
  const ctl = context.view(control, CONTROL_BYTES, Int32Array);
  const recorder = new Recorder(ctl);
  const prng = Prng.derive(seed, 3, index);
  const words = context.view(region, (TOTALS + parties) * 4, Int32Array);
  const barrier = new Barrier(context.view(region + BARRIER_WORD * 4, BARRIER_BYTES, Int32Array), parties);
  let added = 0, rounds = 0;
  try {
    for (;;) {
      const started = performance.now();
      const adds = prng.between(1, 32);
      let round = 0;
      for (let i = 0; i < adds; i++) {
        const value = prng.between(1, 3);
        Atomics.add(words, prng.below(COUNTERS), value);
        round += value;
      }
      Atomics.add(words, TOTALS + index, round);
      added += round;
      recorder.count('Atomics.add', adds);
      const arrived = performance.now();
      const last = await barrier.wait(context);
      recorder.took('Barrier.wait', arrived);
      if (last) {
        let counted = 0, claimed = 0;
        for (let i = 0; i < COUNTERS; i++) counted += Atomics.load(words, i);
        for (let i = 0; i < parties; i++) claimed += Atomics.load(words, TOTALS + i);
        recorder.checked();
        if (counted !== claimed) recorder.violation('counters-exact', `round ${rounds}: counters hold ${counted}, threads added ${claimed}`);
        // One party decides for all whether this was the last round, so every party runs the same rounds.
        const stop = (iterations > 0 && rounds + 1 >= iterations) || Atomics.load(ctl, CTL.STOP) !== 0;
        Atomics.store(words, DECIDED, stop ? 1 : 0);
      }
      await barrier.wait(context);
      rounds++;
      recorder.op();
      recorder.took('round (adds and two barriers)', started);
      if (Atomics.load(words, DECIDED) !== 0) break;
    }
  } catch (error) {
    recorder.violation('expected-returns', `thread ${index}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return { ...recorder.report(prng), added, rounds };
}

async function run(run: ScenarioRun): Promise<void> {
  const page = run.kernel.pageSize;
  const region = await run.root.allocate(page);
  await run.root.inherit(region, page, VM_INHERIT_SHARE);
  const parties = run.nodes * THREADS_PER_NODE;
  const module = new URL(import.meta.url).href;
  const threads: Thread[] = [];
  for (let node = 0; node < run.nodes; node++) {
    const task = run.track(await run.root.clone(node));
    for (let t = 0; t < THREADS_PER_NODE; t++) {
      threads.push(await task.spawn(module, 'contend', run.control, region, threads.length, parties, run.iterations, run.seed));
    }
  }
  // A party that fails leaves the others at the barrier: abort their waits so they report.
  const reports = await Promise.all(threads.map(async (thread, index) => {
    const report = await run.join<Contended>(`thread ${String(index).padStart(3, '0')}`, thread, ['expected-returns', 'counters-exact']);
    if (report === undefined) for (const other of threads) other.abort().catch(() => {});
    return report;
  }));
  const view = await run.root.view(region, (TOTALS + parties) * 4);
  const words = new Int32Array(view.buffer, view.byteOffset, TOTALS + parties);
  let counted = 0;
  for (let i = 0; i < COUNTERS; i++) counted += words[i]!;
  const added = reports.reduce((sum, report) => sum + (report?.added ?? 0), 0);
  const rounds = reports.map((report) => report?.rounds ?? -1);
  run.check.equal('counters-exact', counted, added, 'the shared counters, against what the threads added');
  run.check.equal('counters-exact', rounds.filter((n) => n !== rounds[0]).length, 0, 'threads whose round count differs from the first one\'s');
  run.check.equal('counters-exact', rounds[0]! * parties, Atomics.load(run.ctl, CTL.OPS), 'rounds of every thread, against the operations counted');
  run.results.count('rounds per thread', rounds[0]!);
}

export const sharedMemory: Scenario = {
  name: 'shared-memory',
  summary: 'shared-memory contention: two threads per node Atomics.add into counters of one region cloned onto every node, meeting at the library Barrier each round',
  checks: ['counters-exact', 'expected-returns'],
  expectedOps: (nodes, iterations) => nodes * THREADS_PER_NODE * iterations,
  run,
};
