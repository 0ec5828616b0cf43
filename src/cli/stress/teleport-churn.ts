/**
 * teleport churn: a server task per node (the mesh's), each answering one port, while the host
 * teleports servers from node to node and a client per node keeps calling every port. A
 * teleport moves memory, not the port space (seed 001), so each move stops the server's thread
 * between two requests, takes its receive right out (MOVE_RECEIVE, the requests sent meanwhile
 * stay queued on the port), teleports the task, inserts the right into the moved task under the
 * same name and starts a new thread there: the queue moves with the right. Each sender's next
 * sequence number lives in the server's memory, so it moves with the task and the order check
 * spans every move. Checked as the mesh, across every move.
 */
import { MACH_MSG_TYPE_MOVE_RECEIVE, MACH_PORT_RECEIVE_STATUS } from '../../shared/constants.js';
import type { Thread } from '../../thread.js';
import { buildMesh, checkDelivery, RPC_MODULE, startServers, stopServer } from './ping-pong.js';
import { Prng } from './prng.js';
import type { Scenario, ScenarioRun } from './runner.js';
import { CTL, type ThreadReport } from './thread-kit.js';

type Asked = ThreadReport & { sent: number[] };
type Served = ThreadReport & { received: number[]; served: number };

async function churn(run: ScenarioRun): Promise<void> {
  const mesh = await buildMesh(run);
  const servers = await startServers(run, mesh);
  const targets = mesh.servers.map((server, index) => ({ index, node: server.node }));
  const clientThreads = await Promise.all(mesh.clients.map((client, index) =>
    client.spawn(RPC_MODULE, 'ask', run.control, index, targets, run.iterations, run.seed)));
  const joins = Promise.all(clientThreads.map((thread, index) => run.join<Asked>(`client ${String(index).padStart(3, '0')}`, thread,
    ['no-duplicate', 'expected-returns'])));
  let done = false;
  joins.finally(() => { done = true; }).catch(() => {});
  let served = 0;
  let stints = 0;
  // The host's moves come from the seed too: which server, where to, after how many operations.
  const prng = Prng.derive(run.seed, 0x7e1e);
  while (!done && Atomics.load(run.ctl, CTL.STOP) === 0) {
    const index = prng.below(run.nodes);
    const after = prng.between(10, 60);
    const hop = prng.below(Math.max(1, run.nodes - 1));
    await run.opsReach(Atomics.load(run.ctl, CTL.OPS) + after, joins);
    if (done) break;
    served += await move(run, mesh, servers, index, hop, stints++);
  }
  const asked = await joins;
  for (let index = 0; index < mesh.servers.length; index++) await stopServer(mesh, index);
  const last = await Promise.all(servers.map((thread, index) => run.join<Served>(`server ${index} stint ${stints++}`, thread, ['no-duplicate', 'per-sender-order'])));
  served += last.reduce((sum, report) => sum + (report?.served ?? 0), 0);
  // The last stint's counts cover every stint: they live in the server's memory, which moved with it.
  checkDelivery(run, asked, last.map((report) => report?.received), served);
}

/** Moves server `index` `hop + 1` nodes on (to another node when there is one); returns what its stopped thread served. */
async function move(run: ScenarioRun, mesh: Awaited<ReturnType<typeof buildMesh>>, threads: Thread[], index: number,
  hop: number, stint: number): Promise<number> {
  const server = mesh.servers[index]!;
  const port = mesh.ports[index]!;
  await stopServer(mesh, index);
  const report = await run.join<Served>(`server ${index} stint ${stint}`, threads[index]!, ['no-duplicate', 'per-sender-order']);
  const status = await server.portAttributes(port, MACH_PORT_RECEIVE_STATUS) as { mps_msgcount: number };
  run.results.count('requests queued on a port whose receive right moved', status.mps_msgcount);
  let started = performance.now();
  const right = await server.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);
  run.results.took('mach_port_extract_right (receive)', started);
  started = performance.now();
  const moved = run.track(await server.teleport((server.node + 1 + hop) % run.nodes));
  run.results.took('norma_task_teleport', started);
  mesh.servers[index] = moved;
  started = performance.now();
  await moved.insertRight(port, right, right.type);
  run.results.took('mach_port_insert_right (receive)', started);
  run.results.count('teleports');
  threads[index] = await moved.spawn(RPC_MODULE, 'serve', run.control, index, port, mesh.states[index],
    mesh.clients.map((client) => client.node));
  return report?.served ?? 0;
}

export const teleportChurn: Scenario = {
  name: 'teleport-churn',
  summary: 'teleport churn: servers teleported from node to node, their receive rights (and the requests queued on them) moved into the moved tasks, while a client per node calls every server',
  checks: ['no-loss', 'no-duplicate', 'per-sender-order', 'counters-exact', 'expected-returns'],
  expectedOps: (nodes, iterations) => nodes * iterations,
  run: churn,
};
