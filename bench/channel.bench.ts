/**
 * The cross-node fast path (dist/workers/channel.js) against its peers, node to node:
 *
 *   round trip   a kmsg ping-pong between two serving workers (ring + doorbell), beside the
 *                postMessage echo and the Atomics ping-pong floor (bench/peers.ts); per spin budget
 *   one-way      a stream of kmsgs with 64-byte bodies from one worker to another: the ring, against
 *                one postMessage per message (a 64-byte Uint8Array, and the kmsg as an object;
 *                bench/peers.ts portMesh)
 *
 * Ring tasks are timed on the worker that starts them (overriddenDuration, per message). This module is
 * also the worker body (it runs itself with `workerData.role`), and loads the channel from the
 * built package, dist/, like every bench.
 */
import { MessageChannel, Worker, isMainThread, parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { compare, type BenchTask, type SuiteOptions } from './harness.js';
import { atomicsPingPong, portMesh, postMessageEcho } from './peers.js';
import { suiteResult, type SuiteResult } from './report.js';
import type { WireKmsg } from '../dist/shared/kmsg-wire.js';

type Channel = typeof import('../dist/workers/channel.js') & typeof import('../dist/workers/ring.js') &
  typeof import('../dist/workers/doorbell.js');
type Wire = typeof import('../dist/shared/kmsg-wire.js');
const load = (path: string): Promise<object> => import(new URL(`../../dist/workers/${path}`, import.meta.url).href) as Promise<object>;
const loadChannel = async (): Promise<Channel> =>
  Object.assign({}, ...await Promise.all(['channel.js', 'ring.js', 'doorbell.js'].map(load))) as Channel;
const loadWire = (): Promise<Wire> => import(new URL('../../dist/shared/kmsg-wire.js', import.meta.url).href) as Promise<Wire>;

/** Bytes per ring: what a node pair might be given. A one-way batch overruns it, as a burst would. */
const RING_BYTES = 256 * 1024;
const BODY_BYTES = 64;
/** serve() spin settings measured: none, the default (adaptive), and the same budget fixed. */
const SPINS: readonly { readonly label: string; readonly spin: number; readonly adaptive: boolean }[] = [
  { label: 'no spin', spin: 0, adaptive: true },
  { label: 'spin 20 µs adaptive (default)', spin: 20, adaptive: true },
  { label: 'spin 20 µs fixed', spin: 20, adaptive: false },
];

type Role = 'ring-pinger' | 'ring-ponger' | 'ring-producer' | 'ring-consumer';

interface NodeData {
  readonly role: Role;
  readonly node: number;
  readonly doorbell: SharedArrayBuffer;
  /** By node: the ring from that node (null: none). */
  readonly incoming: readonly (SharedArrayBuffer | null)[];
  /** By node: the ring to that node (null: none). */
  readonly outgoing: readonly (SharedArrayBuffer | null)[];
  readonly spin: number;
  readonly adaptive: boolean;
  /** One-way: producer and consumer's direct port (the consumer's ack of the last message). */
  readonly peer?: MessagePort;
}

/** Host → worker: `count` round trips or messages, timed on the worker. */
interface Batch { readonly op: 'batch'; readonly count: number }
/** Worker → host: ready, or a batch done, with its time on the worker's clock. */
type Reply = { readonly op: 'ready' } | { readonly op: 'done'; readonly count: number; readonly elapsedMs: number };

function kmsg(seq: number, last: boolean): WireKmsg {
  return {
    dest: 1234567, destType: 17, bits: 0x1311, id: last ? 1 : 0, sender: 1024 * 42 + 1, seq,
    reply: null, rights: [], body: new Uint8Array(BODY_BYTES),
  };
}

// ---------------------------------------------------------------------------------------------
// Worker side

async function node(data: NodeData, port: MessagePort): Promise<void> {
  const { Doorbell, RingReader, RingWriter, serve } = await loadChannel();
  const { decodeKmsg } = await loadWire();
  const doorbell = new Doorbell(data.doorbell, data.node);
  const readers = data.incoming.map((sab) => (sab === null ? null : new RingReader(sab)));
  const writers = data.outgoing.map((sab) => (sab === null ? null : new RingWriter(sab)));
  const to = data.node === 0 ? 1 : 0;
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  let answer: (() => void) | undefined;
  const answered = (): Promise<void> => new Promise((resolve) => { answer = resolve; });
  const settle = (): void => {
    const resolve = answer;
    answer = undefined;
    resolve?.();
  };

  /** Ring first; when full, let the consumer run and retry (a kernel would postMessage instead). */
  const send = async (msg: WireKmsg): Promise<void> => {
    const writer = writers[to]!;
    while (!writer.tryWriteKmsg(msg)) {
      doorbell.ring(to);
      await turn();
    }
    doorbell.ring(to);
  };

  let onRecord: (record: Uint8Array, from: number) => void = () => {};
  let run: (count: number) => Promise<void> = async () => {};
  switch (data.role) {
    case 'ring-ponger':
      onRecord = (record, from) => {
        const msg = decodeKmsg(record);
        msg.seq++;
        if (!writers[from]!.tryWriteKmsg(msg)) throw new Error('ring-ponger: reply ring full');
        doorbell.ring(from);
      };
      break;
    case 'ring-pinger':
      onRecord = (record) => {
        decodeKmsg(record);
        settle();
      };
      run = async (count) => {
        for (let seq = 0; seq < count; seq++) {
          const pong = answered();
          // One message in flight: the ring is never full here.
          if (!writers[to]!.tryWriteKmsg(kmsg(seq, false))) throw new Error('ring-pinger: ring full');
          doorbell.ring(to);
          await pong;
        }
      };
      break;
    case 'ring-consumer':
      onRecord = (record) => {
        if (decodeKmsg(record).id === 1) data.peer!.postMessage('ack');
      };
      break;
    case 'ring-producer':
      data.peer!.on('message', settle);
      run = async (count) => {
        const acked = answered();
        for (let seq = 0; seq < count; seq++) await send(kmsg(seq, seq === count - 1));
        await acked;
      };
      break;
  }
  serve(readers, doorbell, onRecord, { spin: data.spin, adaptive: data.adaptive }).catch((error: unknown) => {
    setImmediate(() => { throw error; });
  });
  port.on('message', async (message: Batch) => {
    const started = performance.now();
    await run(message.count);
    port.postMessage({ op: 'done', count: message.count, elapsedMs: performance.now() - started } satisfies Reply);
  });
  port.postMessage({ op: 'ready' } satisfies Reply);
}

if (!isMainThread && (workerData as NodeData | undefined)?.role !== undefined) {
  await node(workerData as NodeData, parentPort!);
}

// ---------------------------------------------------------------------------------------------
// Host side

/** A batch that takes longer than this has stalled (a lost wake-up): fail it, never hang. */
const BATCH_TIMEOUT_MS = 30_000;

/**
 * The next message from `from`; fails if any of `workers` errors or exits first, or after
 * `timeoutMs` (the channel stalled).
 */
function reply(from: Worker, workers: readonly Worker[], timeoutMs = BATCH_TIMEOUT_MS): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const fail = (error: unknown): void => {
      cleanup();
      reject(error instanceof Error ? error : new Error(`worker exited with code ${String(error)}`));
    };
    const ok = (message: Reply): void => {
      cleanup();
      resolve(message);
    };
    const timer = setTimeout(() => fail(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      from.off('message', ok);
      for (const worker of workers) {
        worker.off('error', fail);
        worker.off('exit', fail);
      }
    };
    from.on('message', ok);
    for (const worker of workers) {
      worker.on('error', fail);
      worker.on('exit', fail);
    }
  });
}

/**
 * Two workers on this module: node 0 (`driver`, which times batches) and node 1, with a ring
 * each way and one doorbell. Each sample is one batch of `count`; its per-message time is the
 * sample, its wall time on this thread what the time budget is charged.
 */
function pair(name: string, count: number, roles: readonly [Role, Role], extra: Partial<NodeData> = {}): BenchTask {
  let workers: Worker[] = [];
  const batch = async (n: number): Promise<{ perMessageMs: number; wallMs: number }> => {
    const t0 = performance.now();
    const done = reply(workers[0]!, workers);
    workers[0]!.postMessage({ op: 'batch', count: n } satisfies Batch);
    const answer = await done;
    if (answer.op !== 'done') throw new Error(`${name}: unexpected ${answer.op}`);
    return { perMessageMs: answer.elapsedMs / answer.count, wallMs: performance.now() - t0 };
  };
  return {
    name,
    async: true,
    async start() {
      const { createDoorbell, createRing } = await loadChannel();
      const doorbell = createDoorbell(2);
      const rings = [createRing(RING_BYTES), createRing(RING_BYTES)];
      const { port1, port2 } = new MessageChannel();
      const ports = [port1, port2];
      workers = roles.map((role, node) => {
        const data: NodeData = {
          role, node, doorbell, spin: 0, adaptive: true, ...extra,
          incoming: node === 0 ? [null, rings[1]!] : [rings[0]!, null],
          outgoing: node === 0 ? [null, rings[0]!] : [rings[1]!, null],
          peer: ports[node]!,
        };
        return new Worker(new URL(import.meta.url), { workerData: data, transferList: [ports[node]!] });
      });
      const ready = await Promise.all(workers.map((worker) => reply(worker, workers)));
      if (ready.some((r) => r.op !== 'ready')) throw new Error(`${name}: a worker did not start`);
      await batch(Math.min(count, 100));
    },
    async fn() {
      const { perMessageMs, wallMs } = await batch(count);
      return { overriddenDuration: perMessageMs, overriddenIterationCost: wallMs };
    },
    async stop() {
      await Promise.all(workers.map((worker) => worker.terminate()));
      workers = [];
    },
  };
}

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const rounds = options.quick ? 200 : 1000;
  const messages = options.quick ? 2_000 : 20_000;
  const roundTrip = await compare({
    suite: 'channel',
    title: 'kmsg round trip between two nodes',
    baseline: 'Atomics ping-pong',
    options,
    tasks: [
      atomicsPingPong({ rounds }),
      atomicsPingPong({ rounds, spin: 20_000 }),
      postMessageEcho(),
      ...SPINS.map(({ label, ...spin }) => pair(`ring + doorbell, ${label}`, rounds, ['ring-pinger', 'ring-ponger'], spin)),
    ],
  });
  const oneWay = await compare({
    suite: 'channel',
    title: `one-way stream of kmsgs with ${BODY_BYTES}-byte bodies, per message`,
    baseline: `postMessage ${BODY_BYTES} B Uint8Array`,
    options,
    tasks: [
      portMesh({ name: `postMessage ${BODY_BYTES} B Uint8Array`, shape: 'stream', messages, bytes: BODY_BYTES }),
      portMesh({ name: 'postMessage kmsg object', shape: 'stream', messages, bytes: BODY_BYTES, object: true }),
      ...SPINS.slice(0, 2).map(({ label, ...spin }) => pair(`ring + doorbell, ${label}`, messages, ['ring-producer', 'ring-consumer'], spin)),
    ],
  });
  return suiteResult('channel', options, [roundTrip, oneWay]);
}
