/**
 * chaos (opt-in, --chaos): the ping-pong mesh, every node calling itself too, with the last
 * node crashed once a seeded share of the run is done. Checked: every call in flight to it
 * (the host's joins of its threads, the clients' RPCs to its server) fails as Mach says
 * (KERN_NODE_DOWN on the host; a dead port or a send-once notification in the tasks), and
 * nothing between the survivors is lost, duplicated or reordered; the run goes on without it.
 */
import { KERN_NODE_DOWN } from '../../shared/constants.js';
import { krName } from '../../shared/errors.js';
import { mesh, type Crash } from './ping-pong.js';
import { Prng } from './prng.js';
import type { Scenario } from './runner.js';
import { CTL } from './thread-kit.js';

/**
 * Crashes the last node once a seeded share (20-60%) of the run is done: the clients are told
 * which node went down (CTL.DOWN) before it does, so they can tell its failures from losses.
 * Then calls to it must answer KERN_NODE_DOWN.
 */
const crashMidRun: Crash = async (run, mesh, clientsDone) => {
  const victim = run.nodes - 1;
  const share = Prng.derive(run.seed, 0xc4a05).between(20, 60) / 100;
  if (run.iterations > 0) {
    await run.opsReach(Math.floor(run.nodes * run.iterations * share), clientsDone);
  } else {
    await Promise.race([new Promise((resolve) => setTimeout(resolve, run.durationMs * share)), clientsDone]);
  }
  Atomics.store(run.ctl, CTL.DOWN, victim + 1);
  run.crashed.add(victim);
  await run.kernel.crashNode(victim);
  run.results.count(`node ${victim} crashed at ${Math.round(share * 100)}% of the run`);
  for (const task of [mesh.servers[victim]!, mesh.clients[victim]!]) {
    const { kr } = await run.kernel.mach.task_info(task);
    run.check.that('node-down-answers', kr === KERN_NODE_DOWN, () => `task_info on the crashed node answered ${krName(kr)}`);
  }
};

export const chaos: Scenario = {
  name: 'chaos',
  summary: 'chaos (--chaos): the ping-pong mesh with every node calling itself too; the last node crashes mid-run and the survivors go on',
  checks: ['node-down-answers', 'no-loss', 'no-duplicate', 'per-sender-order', 'expected-returns'],
  expectedOps: (nodes, iterations) => nodes * iterations,
  run: (run) => mesh(run, crashMidRun),
};
