/**
 * A kernel split over two OS processes joined through a real nats-server on loopback (issue 12,
 * item 7), beside raw NATS on the same server:
 * - RPC: a client task on node 0 sends 32 bytes with a MAKE_SEND_ONCE reply right to a port whose
 *   receive right a server task on node 1 holds, in the `norma node` process the kernel spawned;
 *   the server is task code (Task.execute of the mach-msg suite's echo server) looping on
 *   receive / reply; the client times its round trips itself. Beside it: NATS request/reply of
 *   32 bytes with the responder in another process (bench/fixtures/nats-responder.ts, spawned)
 *   and, for scale, in this process on a second connection; and the same RPC between two nodes
 *   of one process.
 * - One-way: N 32-byte messages from a sender task on node 0 to a sink task on node 1 (time from
 *   both starting to both done, per message), vs N NATS publishes to a subscriber that counts
 *   them (time until it answers that the last arrived). NATS core has no back-pressure: its
 *   publisher never waits, where a mach_msg sender waits for queue credits from node 1.
 * - norma_task_clone of a 100-region parent from node 0 to node 1 across processes vs in one
 *   process, with a NATS 32-byte round trip as the floor.
 * - vm_read of 1 MiB from the host: of a task on node 1 whose memory lives there (other
 *   process), of one whose memory is homed on node 0 (it reaches it through the remote pager),
 *   and in one process; vs a NATS request answered with 1 MiB, cut in 512 KiB messages as the
 *   cluster transport cuts (reassembled into one buffer) and in one message where the server's
 *   max_payload allows.
 * One nats-server serves the whole suite (started in `run`, stopped at its end); each task boots
 * its own kernel (and so its own `norma node` process) or its own responder, and stops it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { connect, createInbox, type NatsConnection } from 'nats';
import {
  Kernel, MACH_MSG_TYPE_MAKE_SEND, MACH_PORT_LIMITS_INFO, MACH_PORT_QLIMIT_MAX, VM_INHERIT_SHARE, type Task,
} from 'norma-rt';
import { serve, subjects } from './fixtures/nats-responder.js';
import { compare, type BenchTask, type SuiteOptions } from './harness.js';
import { natsServerPath, startNatsServer, type NatsServer } from './nats-server.js';
import { suiteResult, type SuiteResult } from './report.js';
import { evaluateTargets, type TargetSpec } from './targets.js';

const TASK_FIXTURE = new URL('./fixtures/mach-msg-task.js', import.meta.url);
const RESPONDER = fileURLToPath(new URL('./fixtures/nats-responder.js', import.meta.url));
const SERVICE = 0x7703;
const MiB = 2 ** 20;
/** What the cluster transport cuts a message into (src/cluster/transport-frame.ts CHUNK_BYTES). */
const CHUNK = 512 * 1024;
const BODY = new Uint8Array(32);
const MISSING = 'nats-server not found (apt-get install -y nats-server)';

/** The suite's server; undefined when nats-server is not installed. */
let server: NatsServer | undefined;
const needsServer = async (): Promise<string | undefined> => (server === undefined ? MISSING : undefined);

/** Per-operation ms of a batch; the wrapper charges the batch's wall time to the budget. */
type Batch = () => Promise<number>;

function timed(batch: Batch) {
  return async () => {
    const started = performance.now();
    const perOp = await batch();
    return { overriddenDuration: perOp, overriddenIterationCost: performance.now() - started };
  };
}

// ---- raw NATS -------------------------------------------------------------------------------

interface NatsSide {
  readonly nc: NatsConnection;
  readonly s: ReturnType<typeof subjects>;
  /** Requests `size` bytes from the blob subject in messages of `chunk`; resolves with them in one buffer. */
  blob(size: number, chunk: number): Promise<Uint8Array>;
  /** Messages sent to the sink so far (what `expect` asks the responder to have counted). */
  sent: number;
}

/** The responder as a program in another process; resolves once it serves. */
async function spawnResponder(nats: NatsServer, prefix: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [RESPONDER], {
    env: { ...process.env, NATS_URL: nats.url, NATS_USER: nats.user, NATS_PASS: nats.pass, BENCH_PREFIX: prefix },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`nats responder exited (${code}) before serving`)));
    child.stdout!.setEncoding('utf8').on('data', (line: string) => { if (line.includes('ready')) resolve(); });
  });
  return child;
}

/** Closing its stdin tells it to leave; SIGKILL after 3 s. */
function stopResponder(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => { clearTimeout(killer); resolve(); });
    child.stdin!.end();
  });
}

/** A NATS task: the requesting connection here, the responder `where` says; `batch` times what it does. */
function natsTask(name: string, where: 'child' | 'here', batch: (side: NatsSide) => Promise<number>, bytes?: number,
  unavailable: () => Promise<string | undefined> = needsServer): BenchTask {
  let side: NatsSide | undefined;
  let stops: (() => Promise<void>)[] = [];
  return {
    name,
    async: true,
    unavailable,
    ...(bytes !== undefined ? { bytes } : {}),
    async start() {
      const nats = server!;
      const prefix = `bench.${randomUUID().slice(0, 8)}`;
      const options = { servers: nats.url, user: nats.user, pass: nats.pass };
      if (where === 'child') {
        const child = await spawnResponder(nats, prefix);
        stops.push(() => stopResponder(child));
      } else {
        const responder = await connect({ ...options, name: 'bench-responder-here' });
        stops.push(() => responder.close());
        serve(responder, prefix);
        await responder.flush();
      }
      const nc = await connect({ ...options, name: 'bench-requester' });
      stops.push(() => nc.close());
      const inbox = createInbox();
      let pending: { buffer: Uint8Array; at: number; resolve: (data: Uint8Array) => void } | undefined;
      nc.subscribe(inbox, {
        callback: (_error, msg) => {
          const p = pending!;
          // One message holding it all is the answer itself; chunks are gathered into one buffer.
          if (msg.data.byteLength === p.buffer.byteLength) p.buffer = msg.data;
          else p.buffer.set(msg.data, p.at);
          p.at += msg.data.byteLength;
          if (p.at === p.buffer.byteLength) { pending = undefined; p.resolve(p.buffer); }
        },
      });
      await nc.flush();
      const s = subjects(prefix);
      side = {
        nc, s, sent: 0,
        blob: (size, chunk) => new Promise((resolve) => {
          pending = { buffer: new Uint8Array(size), at: 0, resolve };
          nc.publish(s.blob, `${size} ${chunk}`, { reply: inbox });
        }),
      };
    },
    fn: timed(() => batch(side!)),
    async stop() {
      side = undefined;
      for (const stop of stops.reverse()) await stop();
      stops = [];
    },
  };
}

const natsRoundTrips = (rounds: number) => async (side: NatsSide): Promise<number> => {
  const started = performance.now();
  for (let i = 0; i < rounds; i++) await side.nc.request(side.s.echo, BODY, { timeout: 10_000 });
  return (performance.now() - started) / rounds;
};

const natsStream = (count: number) => async (side: NatsSide): Promise<number> => {
  const started = performance.now();
  for (let i = 0; i < count; i++) side.nc.publish(side.s.sink, BODY);
  side.sent += count;
  await side.nc.request(side.s.expect, String(side.sent), { timeout: 60_000 });
  return (performance.now() - started) / count;
};

const natsBlob = (size: number, chunk: number) => async (side: NatsSide): Promise<number> => {
  const started = performance.now();
  const data = await side.blob(size, chunk);
  if (data.byteLength !== size) throw new Error(`NATS blob: ${data.byteLength} bytes, not ${size}`);
  return performance.now() - started;
};

// ---- norma ----------------------------------------------------------------------------------

type Where = 'cluster' | 'process';

/** Two nodes: split over this process and a spawned `norma node` ('cluster'), or both here. */
function boot(where: Where): Promise<Kernel> {
  if (where === 'process') return Kernel.boot({ nodes: 2 });
  const nats = server!;
  return Kernel.boot({
    nodes: 2,
    cluster: { nats: nats.url, user: nats.user, pass: nats.pass, name: `bench-${randomUUID().slice(0, 8)}`, spawn: 1 },
  });
}

interface Prepared {
  readonly batch: Batch;
  /** Untimed teardown before the kernel stops (e.g. stopping a server loop). */
  readonly finish?: () => Promise<void>;
}

function kernelTask(name: string, where: Where, prepare: (kernel: Kernel) => Promise<Prepared>, bytes?: number): BenchTask {
  let kernel: Kernel | undefined;
  let prepared: Prepared | undefined;
  return {
    name,
    async: true,
    ...(where === 'cluster' ? { unavailable: needsServer } : {}),
    ...(bytes !== undefined ? { bytes } : {}),
    async start() {
      kernel = await boot(where);
      prepared = await prepare(kernel);
    },
    fn: timed(() => prepared!.batch()),
    async stop() {
      try {
        await prepared?.finish?.();
      } finally {
        prepared = undefined;
        await kernel?.shutdown();
        kernel = undefined;
      }
    },
  };
}

/** A server task on node 1 with a receive right, a client task on node 0 holding a send right to it. */
async function pair(kernel: Kernel, qlimit?: number): Promise<{ server: Task; client: Task; service: number }> {
  const server = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
  const client = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
  const service = await server.allocatePort();
  if (qlimit !== undefined) await server.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: qlimit });
  const send = await server.extractRight(service, MACH_MSG_TYPE_MAKE_SEND);
  await client.insertRight(SERVICE, send, send.type);
  return { server, client, service };
}

const rpc = (rounds: number) => async (kernel: Kernel): Promise<Prepared> => {
  const { server, client, service } = await pair(kernel);
  const served = server.execute(TASK_FIXTURE, 'echoServer', service);
  // Awaited in finish; a server that fails before then must not be an unhandled rejection.
  served.catch(() => {});
  return {
    batch: async () => await client.execute(TASK_FIXTURE, 'rpcClient', SERVICE, rounds) as number,
    async finish() {
      await client.execute(TASK_FIXTURE, 'stop', SERVICE);
      await served;
    },
  };
};

const oneWay = (count: number, qlimit?: number) => async (kernel: Kernel): Promise<Prepared> => {
  const { server, client, service } = await pair(kernel, qlimit);
  return {
    async batch() {
      const started = performance.now();
      await Promise.all([
        server.execute(TASK_FIXTURE, 'sink', service, count),
        client.execute(TASK_FIXTURE, 'sender', SERVICE, count),
      ]);
      return (performance.now() - started) / count;
    },
  };
};

/** A parent on node 0 with `regions` one-page SHARE regions; cloned to node 1, the child terminated untimed. */
const clone = (regions: number) => async (kernel: Kernel): Promise<Prepared> => {
  const parent = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
  for (let i = 0; i < regions; i++) {
    const address = await parent.allocate(kernel.pageSize);
    await parent.inherit(address, kernel.pageSize, VM_INHERIT_SHARE);
  }
  return {
    async batch() {
      const started = performance.now();
      const child = await parent.clone(1);
      const elapsed = performance.now() - started;
      await child.terminate();
      return elapsed;
    },
  };
};

/**
 * vm_read of `size` bytes of a task on node 1. `home` 1: the task allocated and filled them
 * itself; `home` 0: they are a SHARE region of a parent on node 0, inherited by the task.
 */
const vmRead = (size: number, home: 0 | 1) => async (kernel: Kernel): Promise<Prepared> => {
  const data = new Uint8Array(size).fill(0x5a);
  let task: Task;
  let address: number;
  if (home === 1) {
    task = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    address = await task.allocate(size);
    await task.write(address, data);
  } else {
    const parent = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    address = await parent.allocate(size);
    await parent.write(address, data);
    await parent.inherit(address, size, VM_INHERIT_SHARE);
    task = await parent.createOn(1);
  }
  return {
    async batch() {
      const started = performance.now();
      const read = await task.read(address, size);
      const elapsed = performance.now() - started;
      if (read.byteLength !== size || read[size - 1] !== 0x5a) throw new Error(`vm_read: ${read.byteLength} bytes, last ${read[size - 1]}`);
      return elapsed;
    },
  };
};

// ---- the suite ------------------------------------------------------------------------------

const RPC = 'RPC round trip, 32 B, node 0 → node 1 in another process';
const ONE_WAY = 'one-way 32-byte messages to another process (time per message)';
const CLONE = 'norma_task_clone of 100 regions, node 0 → node 1';
const READ = 'vm_read of 1 MiB from another process';

const NATS_RPC = 'NATS request/reply, responder in another process';
const NATS_PUB = 'NATS publish, subscriber in another process';
const NATS_BLOB = 'NATS request, 1 MiB answer in 512 KiB messages, other process';
const CLUSTER_RPC = 'mach_msg RPC, cluster (other process)';
const CLUSTER_ONE_WAY = 'mach_msg one-way, cluster, qlimit 16';
const READ_REMOTE = 'vm_read 1 MiB, task + memory on node 1 (other process)';
const READ_PAGER = 'vm_read 1 MiB, task on node 1, memory homed on node 0 (remote pager)';

/** No goals are set for the cluster yet: the ratios are recorded (msg/s or bytes/s of norma over NATS's). */
const TARGETS: readonly TargetSpec[] = [
  { kind: 'faster', name: 'cross-process mach_msg RPC vs NATS request/reply (ops/s)', comparison: RPC, task: CLUSTER_RPC, peer: NATS_RPC },
  { kind: 'faster', name: 'cross-process one-way, qlimit 16, vs NATS publish (msg/s)', comparison: ONE_WAY, task: CLUSTER_ONE_WAY, peer: NATS_PUB },
  { kind: 'faster', name: 'cross-process vm_read 1 MiB vs NATS 1 MiB request (bytes/s)', comparison: READ, task: READ_REMOTE, peer: NATS_BLOB },
  { kind: 'faster', name: 'vm_read 1 MiB through the remote pager vs NATS 1 MiB request (bytes/s)', comparison: READ, task: READ_PAGER, peer: NATS_BLOB },
];

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const rounds = options.quick ? 50 : 500;
  const count = options.quick ? 500 : 2000;
  server = natsServerPath() === undefined ? undefined : await startNatsServer();
  try {
    // max_payload bounds one NATS message; the INFO the server sent says what it is.
    const maxPayload = server === undefined ? 0 : await (async () => {
      const nc = await connect({ servers: server!.url, user: server!.user, pass: server!.pass });
      try { return nc.info?.max_payload ?? 0; } finally { await nc.close(); }
    })();
    const oneMessage = async () => (await needsServer()) ??
      (maxPayload >= MiB ? undefined : `the server's max_payload (${maxPayload} B) is under 1 MiB`);
    const comparisons = [
      await compare({
        suite: 'cluster', title: RPC, baseline: NATS_RPC, options,
        tasks: [
          natsTask(NATS_RPC, 'child', natsRoundTrips(rounds)),
          natsTask('NATS request/reply, responder in this process', 'here', natsRoundTrips(rounds)),
          kernelTask(CLUSTER_RPC, 'cluster', rpc(rounds)),
          kernelTask('mach_msg RPC, cross node, one process', 'process', rpc(rounds)),
        ],
      }),
      await compare({
        suite: 'cluster', title: ONE_WAY, baseline: NATS_PUB, options,
        tasks: [
          natsTask(NATS_PUB, 'child', natsStream(count)),
          natsTask('NATS publish, subscriber in this process', 'here', natsStream(count)),
          kernelTask(CLUSTER_ONE_WAY, 'cluster', oneWay(count, MACH_PORT_QLIMIT_MAX)),
          kernelTask('mach_msg one-way, cluster, default qlimit 5', 'cluster', oneWay(count)),
          kernelTask('mach_msg one-way, cross node, one process, qlimit 16', 'process', oneWay(count, MACH_PORT_QLIMIT_MAX)),
        ],
      }),
      await compare({
        suite: 'cluster', title: CLONE, baseline: 'norma_task_clone 100 regions, one process', options,
        tasks: [
          kernelTask('norma_task_clone 100 regions, one process', 'process', clone(100)),
          kernelTask('norma_task_clone 100 regions, cluster (other process)', 'cluster', clone(100)),
          natsTask('NATS request/reply 32 B, other process (floor)', 'child', natsRoundTrips(1)),
        ],
      }),
      await compare({
        suite: 'cluster', title: READ, baseline: NATS_BLOB, options,
        tasks: [
          natsTask(NATS_BLOB, 'child', natsBlob(MiB, CHUNK), MiB),
          natsTask('NATS request, 1 MiB answer in one message, other process', 'child', natsBlob(MiB, MiB), MiB, oneMessage),
          kernelTask(READ_REMOTE, 'cluster', vmRead(MiB, 1), MiB),
          kernelTask(READ_PAGER, 'cluster', vmRead(MiB, 0), MiB),
          kernelTask('vm_read 1 MiB, task on node 1, one process', 'process', vmRead(MiB, 1), MiB),
        ],
      }),
    ];
    return suiteResult('cluster', options, comparisons, evaluateTargets('cluster', comparisons, TARGETS));
  } finally {
    await server?.stop();
    server = undefined;
  }
}
