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
 *   sabCopy(bytes)         Uint8Array.set of `bytes` into a freshly allocated SharedArrayBuffer
 *                          (what VM_INHERIT_COPY costs at the very least); `fresh: false`
 *                          copies into a target allocated at start, to show the page-fault share
 *
 * Worker bodies are bench/fixtures/*.ts, loaded as compiled JS beside this file.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink/dist/esm/comlink.mjs';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Piscina } from 'piscina';
import type { BenchTask } from './harness.js';
import { formatBytes } from './report.js';
import {
  PING_SEQ,
  PING_WORDS,
  PONG_STOP,
  type AtomicsNodeData,
  type EchoApi,
  type PingBatch,
  type PingReply,
} from './fixtures/protocol.js';

const fixture = (name: string): URL => new URL(`./fixtures/${name}`, import.meta.url);

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
  let remote: Comlink.Remote<EchoApi> | undefined;
  let seq = 0;
  return {
    name,
    async: true,
    async start() {
      worker = new Worker(fixture('comlink-node.js'));
      remote = Comlink.wrap<EchoApi>(nodeEndpoint(worker));
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
  let pool: Piscina<number, number> | undefined;
  let seq = 0;
  return {
    name,
    async: true,
    async start() {
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
