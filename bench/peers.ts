/**
 * The baselines every suite compares against, written once. Each factory returns a BenchTask
 * whose `start` spawns what it needs (outside the timed window), whose `fn` is one operation,
 * and whose `stop` terminates every worker `start` spawned, so the process exits by itself.
 *
 *   postMessageEcho()      one awaited postMessage round trip to an echo worker
 *   atomicsPingPong()      the SAB + Atomics wake-up floor between two blocked workers, per round
 *                          trip, timed on the worker (overriddenDuration); `spin` polls first
 *                          (the cache-line floor, when the other side is caught polling)
 *   comlinkEcho()          one comlink call round trip (the kernel's control plane)
 *   piscinaRun()           one piscina `run` of a trivial task, on a one-thread pool
 *   portMesh(options)      messages posted between workers over MessagePorts, one postMessage
 *                          each: a one-way stream from one worker to another, or a mesh where
 *                          every worker posts to every other; time per message, all of them
 *                          from the first post to the last receipt
 *   sabCopy(bytes)         Uint8Array.set of `bytes` into a freshly allocated SharedArrayBuffer
 *                          (what VM_INHERIT_COPY costs at the very least); `fresh: false`
 *                          copies into a target allocated at start, to show the page-fault share
 *
 * Worker bodies are bench/fixtures/*.ts, loaded as compiled JS beside this file. comlink and
 * piscina are loaded when first needed: where one is not installed, its peers are skipped with a
 * message instead of failing the suite.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type * as ComlinkModule from 'comlink/dist/esm/comlink.mjs';
import type * as NodeAdapterModule from 'comlink/dist/esm/node-adapter.mjs';
import type * as PiscinaModule from 'piscina';
import type { BenchTask } from './harness.js';
import { formatBytes } from './report.js';
import {
  PING_SEQ,
  PING_WORDS,
  PONG_STOP,
  type AtomicsNodeData,
  type EchoApi,
  type MeshDone,
  type MeshNodeData,
  type MeshRun,
  type PingBatch,
  type PingReply,
} from './fixtures/protocol.js';

const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

/** A package imported on first use; `unavailable` says why it cannot be, for BenchTask. */
export interface OptionalPackage<T> {
  readonly load: () => Promise<T>;
  readonly unavailable: () => Promise<string | undefined>;
}

export function optionalPackage<T>(name: string, specifier: string = name): OptionalPackage<T> {
  let loaded: Promise<T | Error> | undefined;
  const attempt = (): Promise<T | Error> =>
    (loaded ??= (import(specifier) as Promise<T>).catch((error: unknown) =>
      error instanceof Error ? error : new Error(String(error))));
  return {
    async load() {
      const module = await attempt();
      if (module instanceof Error) throw module;
      return module;
    },
    async unavailable() {
      const module = await attempt();
      return module instanceof Error ? `needs the package ${name} (npm install ${name}): ${module.message.split('\n')[0]}` : undefined;
    },
  };
}

const comlink = optionalPackage<typeof ComlinkModule>('comlink', 'comlink/dist/esm/comlink.mjs');
const comlinkNode = optionalPackage<typeof NodeAdapterModule>('comlink', 'comlink/dist/esm/node-adapter.mjs');
export const piscina = optionalPackage<typeof PiscinaModule>('piscina');

/** Resolves once the worker is running its module, rejects if it fails to get there. */
function online(worker: Worker): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: unknown): void => {
      worker.off('online', ok);
      reject(error instanceof Error ? error : new Error(`worker exited with code ${String(error)}`));
    };
    const ok = (): void => {
      worker.off('error', fail);
      worker.off('exit', fail);
      resolve();
    };
    worker.once('online', ok);
    worker.once('error', fail);
    worker.once('exit', fail);
  });
}

/**
 * The single call in flight to a worker that answers in order. A worker that errors or exits
 * fails the call in flight instead of leaving it pending forever.
 */
class InFlight<T> {
  #pending: { resolve: (value: T) => void; reject: (error: Error) => void } | undefined;

  constructor(worker: Worker) {
    worker.on('message', (message: T) => {
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.resolve(message);
    });
    const fail = (error: Error): void => {
      const pending = this.#pending;
      this.#pending = undefined;
      pending?.reject(error);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`worker exited with code ${code}`)));
  }

  /** Post `message` and wait for the next message back. */
  call(worker: Worker, message: unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending = { resolve, reject };
      worker.postMessage(message);
    });
  }
}

/** Raw postMessage round trip: post a number, await the echo. */
export function postMessageEcho(name = 'postMessage echo'): BenchTask {
  let worker: Worker | undefined;
  let link: InFlight<number> | undefined;
  let seq = 0;
  return {
    name,
    async: true,
    async start() {
      worker = new Worker(fixture('echo-node.js'));
      link = new InFlight<number>(worker);
      await online(worker);
      await link.call(worker, -1);
    },
    async fn() {
      await link!.call(worker!, seq++);
    },
    async stop() {
      await worker?.terminate();
      worker = undefined;
    },
  };
}

export interface AtomicsPingPongOptions {
  readonly name?: string;
  /** Round trips per sample; each sample reports their mean. */
  readonly rounds?: number;
  /** Atomics.load polls before each Atomics.wait, on both sides; default 0 (block at once). */
  readonly spin?: number;
}

/**
 * SAB + Atomics ping-pong floor: two workers, each blocked in Atomics.wait until the other's
 * Atomics.notify (after `spin` polls, if any). Each sample is a batch of `rounds` round trips timed inside the pinger; the
 * sample is the per-round-trip time (overriddenDuration), and the batch's wall time on this
 * thread is charged to the time budget (overriddenIterationCost).
 */
export function atomicsPingPong(options: AtomicsPingPongOptions = {}): BenchTask {
  const rounds = options.rounds ?? 1000;
  const spin = options.spin ?? 0;
  let cell: Int32Array | undefined;
  let ping: Worker | undefined;
  let pong: Worker | undefined;
  let link: InFlight<PingReply> | undefined;

  const batch = async (n: number): Promise<{ perRoundTripMs: number; wallMs: number }> => {
    const t0 = performance.now();
    const request: PingBatch = { op: 'batch', rounds: n };
    const reply = await link!.call(ping!, request);
    const wallMs = performance.now() - t0;
    if (reply.op === 'batch_failed') throw new Error(`atomics ping-pong: ${reply.reason}`);
    return { perRoundTripMs: reply.elapsedMs / reply.rounds, wallMs };
  };

  return {
    name: options.name ?? (spin > 0 ? 'Atomics ping-pong, spin then wait' : 'Atomics ping-pong'),
    async: true,
    async start() {
      const sab = new SharedArrayBuffer(PING_WORDS * Int32Array.BYTES_PER_ELEMENT);
      cell = new Int32Array(sab);
      const data = (role: AtomicsNodeData['role']): AtomicsNodeData => ({ role, sab, spin });
      pong = new Worker(fixture('atomics-node.js'), { workerData: data('pong') });
      ping = new Worker(fixture('atomics-node.js'), { workerData: data('ping') });
      link = new InFlight<PingReply>(ping);
      await Promise.all([online(pong), online(ping)]);
      await batch(1);
    },
    async fn() {
      const { perRoundTripMs, wallMs } = await batch(rounds);
      return { overriddenDuration: perRoundTripMs, overriddenIterationCost: wallMs };
    },
    async stop() {
      // The ponger never returns to its event loop: tell it to leave its wait loop, then
      // terminate both as the backstop.
      if (cell) {
        Atomics.store(cell, PING_SEQ, PONG_STOP);
        Atomics.notify(cell, PING_SEQ);
      }
      await Promise.all([ping?.terminate(), pong?.terminate()]);
      ping = pong = undefined;
      cell = undefined;
    },
  };
}

/** comlink call round trip: `await remote.echo(n)` on a worker exposing EchoApi. */
export function comlinkEcho(name = 'comlink call'): BenchTask {
  let worker: Worker | undefined;
  let remote: ComlinkModule.Remote<EchoApi> | undefined;
  let seq = 0;
  return {
    name,
    async: true,
    unavailable: comlink.unavailable,
    async start() {
      const [{ wrap }, { default: nodeEndpoint }] = await Promise.all([comlink.load(), comlinkNode.load()]);
      worker = new Worker(fixture('comlink-node.js'));
      remote = wrap<EchoApi>(nodeEndpoint(worker));
      await online(worker);
      await remote.echo(-1);
    },
    async fn() {
      await remote!.echo(seq++);
    },
    async stop() {
      remote = undefined;
      await worker?.terminate();
      worker = undefined;
    },
  };
}

/** piscina `run` of a trivial task on a one-thread pool (no queueing, no pool growth). */
export function piscinaRun(name = 'piscina run'): BenchTask {
  let pool: PiscinaModule.Piscina<number, number> | undefined;
  let seq = 0;
  return {
    name,
    async: true,
    unavailable: piscina.unavailable,
    async start() {
      const { Piscina } = await piscina.load();
      pool = new Piscina<number, number>({
        filename: fixture('piscina-task.js').href,
        minThreads: 1,
        maxThreads: 1,
      });
      await pool.run(-1);
    },
    async fn() {
      await pool!.run(seq++);
    },
    async stop() {
      await pool?.destroy();
      pool = undefined;
    },
  };
}

export interface PortMeshOptions {
  readonly name: string;
  /** 'stream': worker 0 posts every message to worker 1; 'mesh': every worker to every other. */
  readonly shape: 'stream' | 'mesh';
  /** Workers (a stream has 2). */
  readonly workers?: number;
  /** Messages per sample, all workers together (a mesh rounds it to a whole number per pair). */
  readonly messages: number;
  /** Body bytes: each message is a fresh Uint8Array of this size, or a kmsg-shaped object holding one. */
  readonly bytes: number;
  readonly object?: boolean;
}

/**
 * Messages over MessagePorts between workers, one postMessage each (no batching, no back-pressure:
 * what a user writes by hand). A sample is `messages` messages; its time runs from the first
 * worker's first post to the last worker's last receipt on the shared epoch clock, per message.
 */
export function portMesh(options: PortMeshOptions): BenchTask {
  const size = options.shape === 'stream' ? 2 : (options.workers ?? 2);
  const perPair = options.shape === 'stream' ? options.messages : Math.max(1, Math.round(options.messages / (size * (size - 1))));
  const sends = Array.from({ length: size }, (_, from) => Array.from({ length: size }, (_, to) =>
    options.shape === 'stream' ? (from === 0 && to === 1 ? perPair : 0) : (from === to ? 0 : perPair)));
  const expects = sends[0]!.map((_, to) => sends.reduce((sum, row) => sum + row[to]!, 0));
  const total = expects.reduce((a, b) => a + b, 0);
  let workers: Worker[] = [];
  let links: InFlight<MeshDone>[] = [];

  const batch = async (): Promise<{ perMessageMs: number; wallMs: number }> => {
    const t0 = performance.now();
    const done = await Promise.all(workers.map((worker, i) =>
      links[i]!.call(worker, { op: 'run', sends: sends[i]!, expect: expects[i]! } satisfies MeshRun)));
    const span = Math.max(...done.map((d) => d.end)) - Math.min(...done.map((d) => d.start));
    return { perMessageMs: span / total, wallMs: performance.now() - t0 };
  };
  return {
    name: options.name,
    async: true,
    async start() {
      const ports: (MessagePort | null)[][] = Array.from({ length: size }, () => Array<MessagePort | null>(size).fill(null));
      for (let a = 0; a < size; a++) {
        for (let b = a + 1; b < size; b++) {
          const { port1, port2 } = new MessageChannel();
          ports[a]![b] = port1;
          ports[b]![a] = port2;
        }
      }
      workers = ports.map((peers) => {
        const data: MeshNodeData = { peers, bytes: options.bytes, object: options.object ?? false };
        return new Worker(fixture('port-mesh-node.js'), { workerData: data, transferList: peers.filter((p) => p !== null) });
      });
      links = workers.map((worker) => new InFlight<MeshDone>(worker));
      await Promise.all(workers.map(online));
      await batch();
    },
    async fn() {
      const { perMessageMs, wallMs } = await batch();
      return { overriddenDuration: perMessageMs, overriddenIterationCost: wallMs };
    },
    async stop() {
      await Promise.all(workers.map((worker) => worker.terminate()));
      workers = [];
      links = [];
    },
  };
}

/** Keeps the last copy reachable so the copy cannot be optimized away. */
export let copySink: Uint8Array | undefined;

export interface SabCopyOptions {
  readonly name?: string;
  /**
   * Allocate the target SharedArrayBuffer inside the timed function (default), as the kernel's
   * COPY inheritance must; false copies into one target allocated at start, which separates
   * the copy itself from the first-touch page faults of fresh memory.
   */
  readonly fresh?: boolean;
}

/** `Uint8Array.set` of `bytes` from one SharedArrayBuffer into another. */
export function sabCopy(bytes: number, options: SabCopyOptions = {}): BenchTask {
  const fresh = options.fresh ?? true;
  let source: Uint8Array | undefined;
  let target: Uint8Array | undefined;
  return {
    name: options.name ?? `SAB copy ${formatBytes(bytes)}${fresh ? '' : ', reused target'}`,
    async: false,
    bytes,
    start() {
      source = new Uint8Array(new SharedArrayBuffer(bytes));
      for (let i = 0; i < bytes; i += 4096) source[i] = i & 0xff;
      if (!fresh) target = new Uint8Array(new SharedArrayBuffer(bytes)).fill(1);
    },
    fn: fresh
      ? () => {
          const copy = new Uint8Array(new SharedArrayBuffer(bytes));
          copy.set(source!);
          copySink = copy;
        }
      : () => {
          target!.set(source!);
          copySink = target;
        },
    stop() {
      source = target = copySink = undefined;
    },
  };
}
