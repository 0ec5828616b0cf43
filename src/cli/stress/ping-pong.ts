/**
 * ping-pong mesh: a server task and a client task on every node; each client RPCs the servers
 * of the other nodes, in an order its PRNG draws. Checked: every request answered once and in
 * each sender's order (the servers check sequence numbers as they go), per sender and port
 * sent = received at the end, and the replies counted = the operations counted. The chaos
 * scenario is this mesh with a node crashed mid-run.
 */
import { MACH_MSG_TYPE_MAKE_SEND } from '../../shared/constants.js';
import type { Task } from '../../task.js';
import type { Target } from './rpc.js';
import type { Scenario, ScenarioRun } from './runner.js';
import { CTL, serviceName, STOP_ID, type ThreadReport } from './thread-kit.js';

export const RPC_MODULE = new URL('./rpc.js', import.meta.url).href;

type Asked = ThreadReport & { sent: number[] };
type Served = ThreadReport & { received: number[]; served: number };

/** Servers, each with its port and a page for its per-sender state; a client per node holding a send right to every port. */
export interface Mesh {
  readonly servers: Task[];
  readonly ports: number[];
  readonly states: number[];
  readonly clients: Task[];
}

export async function buildMesh(run: ScenarioRun): Promise<Mesh> {
  const mesh: Mesh = { servers: [], ports: [], states: [], clients: [] };
  for (let node = 0; node < run.nodes; node++) {
    const server = run.track(await run.root.createOn(node));
    mesh.servers.push(server);
    mesh.ports.push(await server.allocatePort());
    mesh.states.push(await server.allocate(run.kernel.pageSize));
    mesh.clients.push(run.track(await run.root.createOn(node)));
  }
  for (const [index, server] of mesh.servers.entries()) {
    for (const client of mesh.clients) {
      const right = await server.extractRight(mesh.ports[index]!, MACH_MSG_TYPE_MAKE_SEND);
      await client.insertRight(serviceName(index), right, right.type);
    }
  }
  return mesh;
}

/** Starts the servers' threads. */
export function startServers(run: ScenarioRun, mesh: Mesh) {
  const senderNodes = mesh.clients.map((client) => client.node);
  return Promise.all(mesh.servers.map((server, index) =>
    server.spawn(RPC_MODULE, 'serve', run.control, index, mesh.ports[index], mesh.states[index], senderNodes)));
}

/** Stops a server's thread between two requests: STOP queues behind every request sent before it. */
export async function stopServer(mesh: Mesh, index: number): Promise<void> {
  await mesh.servers[index]!.send({ remotePort: mesh.ports[index]!, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: STOP_ID });
}

/**
 * Per client and port: replies the client had = requests the server took (no-loss); and the
 * totals: replies = operations counted, served = replies. Clients and servers that died with a
 * crashed node (undefined) are left out, and the totals with them.
 */
export function checkDelivery(run: ScenarioRun, asked: (Asked | undefined)[], received: (number[] | undefined)[], served: number): void {
  let replies = 0;
  for (const [client, report] of asked.entries()) {
    if (report === undefined) continue;
    for (const [port, counts] of received.entries()) {
      if (counts === undefined) continue;
      run.check.equal('no-loss', counts[client] ?? 0, report.sent[port] ?? 0, `port ${port}: requests taken from client ${client}, against the replies it had`);
    }
    replies += report.sent.reduce((a, b) => a + b, 0);
  }
  if (run.crashed.size > 0) return;
  run.check.equal('counters-exact', replies, Atomics.load(run.ctl, CTL.OPS), 'replies the clients had, against the operations counted');
  run.check.equal('counters-exact', served, replies, 'requests the servers answered, against the replies the clients had');
}

/** Under chaos (chaos.ts): what crashes a node while the clients run. */
export type Crash = (run: ScenarioRun, mesh: Mesh, clientsDone: Promise<unknown>) => Promise<void>;

/** The mesh run; with `crash`, a node crashed mid-run. */
export async function mesh(run: ScenarioRun, crash?: Crash): Promise<void> {
  const chaos = crash !== undefined;
  const built = await buildMesh(run);
  const serverThreads = await startServers(run, built);
  // Everyone calls every other node; with one node, or under chaos (so the survivors of a
  // two-node run still have traffic), its own node too.
  const targetsOf = (node: number): Target[] => built.servers.map((server, index) => ({ index, node: server.node }))
    .filter((target) => chaos || run.nodes === 1 || target.node !== node);
  const clientThreads = await Promise.all(built.clients.map((client, index) =>
    client.spawn(RPC_MODULE, 'ask', run.control, index, targetsOf(client.node), run.iterations, run.seed)));
  const label = (index: number) => `client ${String(index).padStart(3, '0')}`;
  const joins = clientThreads.map((thread, index) => run.join<Asked>(label(index), thread, ['no-duplicate', 'expected-returns']));
  const crashed = crash?.(run, built, Promise.all(joins));
  const asked = await Promise.all(joins);
  await crashed;
  // A client on the crashed node may or may not have finished first: its draws are timing's.
  for (const [index, client] of built.clients.entries()) if (run.crashed.has(client.node)) run.results.dropDigest(label(index));
  for (const [index, server] of built.servers.entries()) if (!run.crashed.has(server.node)) await stopServer(built, index);
  const servedReports = await Promise.all(serverThreads.map((thread, index) => run.join<Served>(`server ${index}`, thread, ['no-duplicate', 'per-sender-order'])));
  checkDelivery(run, asked, servedReports.map((report) => report?.received),
    servedReports.reduce((sum, report) => sum + (report?.served ?? 0), 0));
}

export const pingPong: Scenario = {
  name: 'ping-pong',
  summary: "ping-pong mesh: a client per node RPCs every other node's server (mach_msg send + receive on a reply right)",
  checks: ['no-loss', 'no-duplicate', 'per-sender-order', 'counters-exact', 'expected-returns'],
  expectedOps: (nodes, iterations) => nodes * iterations,
  run: (run) => mesh(run),
};
