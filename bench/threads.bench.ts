/**
 * Threads (issue 9 item 6), each beside what a user would reach for instead, in the same run:
 * - starting code: task.spawn to the entry's first line and back (join of an entry that returns
 *   at once), beside piscina.run of a trivial task on a warm pool and new Worker to its first
 *   message;
 * - examples/life.mjs, the Game of Life of a thread per node at the library Barrier, on 1 node and
 *   on every node, beside the same simulation (the example's own runBand) on 1 and on every
 *   piscina worker over a SharedArrayBuffer;
 * - examples/token-ring.mjs, time per hop of a token passed by mach_msg round a ring of a task per
 *   node, beside a ring of as many workers passing it over MessagePorts.
 * Defaults as users get them: Kernel.boot() (a node per available core); piscina sized to the
 * party count, which a barrier needs (every party must run at once).
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker } from 'node:worker_threads';
import { Kernel, type Task } from 'norma-rt';
import type { Piscina } from 'piscina';
import { compare, type BenchTask, type SuiteOptions } from './harness.js';
import { piscina, piscinaRun } from './peers.js';
import { suiteResult, type SuiteResult } from './report.js';
import type { LifeBand, LifeModule, PortRingData } from './fixtures/threads-protocol.js';

const examples = new URL('../../examples/', import.meta.url);
const FIRST_LINE = new URL('./fixtures/first-line-task.js', import.meta.url);
/** Threads of a task before the bench replaces it: ended threads stay in the table until their task ends. */
const SPAWNS_PER_TASK = 500;

interface RingModule {
  ring(kernel: Kernel, size: number): Promise<unknown>;
  runRing(ring: unknown, laps: number): Promise<number>;
}

/** task.spawn of an entry that returns at once, joined: spawn to first line and back. */
function spawnJoin(): BenchTask {
  let kernel: Kernel | undefined;
  let task: Task | undefined;
  let spawned = 0;
  return {
    name: 'task.spawn + join',
    async: true,
    async start() {
      kernel = await Kernel.boot();
      task = await kernel.bootstrapTask.createOn(kernel.nodes - 1, { inheritMemory: false });
    },
    async fn() {
      const started = performance.now();
      await (await task!.spawn(FIRST_LINE, 'firstLine')).join();
      const elapsed = performance.now() - started;
      if (++spawned % SPAWNS_PER_TASK === 0) {
        await task!.terminate();
        task = await kernel!.bootstrapTask.createOn(kernel!.nodes - 1, { inheritMemory: false });
      }
      return { overriddenDuration: elapsed, overriddenIterationCost: performance.now() - started };
    },
    async stop() {
      await kernel?.shutdown();
      kernel = task = undefined;
    },
  };
}

/** new Worker until its first message (its first line posts it); the terminate is not timed. */
function newWorker(): BenchTask {
  return {
    name: 'new Worker to first message',
    async: true,
    async fn() {
      const started = performance.now();
      const worker = new Worker(`require('node:worker_threads').parentPort.postMessage(1)`, { eval: true });
      await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
      const elapsed = performance.now() - started;
      await worker.terminate();
      return { overriddenDuration: elapsed, overriddenIterationCost: performance.now() - started };
    },
  };
}

interface LifeSize { width: number; height: number; generations: number }

/** The example's simulation on `parties` threads, one per node (1: a single thread on node 0). */
function lifeOnNodes(life: LifeModule, size: LifeSize, parties: number, expected: Uint8Array): BenchTask {
  let kernel: Kernel | undefined;
  let prepared: unknown;
  let last: Uint8Array | undefined;
  return {
    name: `norma, ${parties} node${parties > 1 ? 's' : ''}`,
    async: true,
    async start() {
      kernel = await Kernel.boot();
      prepared = await life.prepare(kernel, parties, size.width, size.height);
    },
    async fn() {
      const { grid, ms } = await life.simulate(prepared, parties, size.generations, life.seedGrid(size.width, size.height));
      last = grid;
      return { overriddenDuration: ms };
    },
    async stop() {
      await kernel?.shutdown();
      kernel = undefined;
      checkGrid(`norma on ${parties} nodes`, last, expected);
    },
  };
}

/** The same simulation as piscina tasks, one band each, on a pool of `parties` workers. */
function lifeOnPiscina(life: LifeModule, size: LifeSize, parties: number, expected: Uint8Array): BenchTask {
  let pool: Piscina<LifeBand, number> | undefined;
  let sab: SharedArrayBuffer | undefined;
  const cells = size.width * size.height;
  return {
    name: `piscina, ${parties} worker${parties > 1 ? 's' : ''}`,
    async: true,
    unavailable: piscina.unavailable,
    async start() {
      const { Piscina } = await piscina.load();
      pool = new Piscina<LifeBand, number>({
        filename: new URL('./fixtures/life-piscina.js', import.meta.url).href, minThreads: parties, maxThreads: parties,
      });
      sab = new SharedArrayBuffer(life.layoutBytes(size.width, size.height));
    },
    async fn() {
      const bytes = new Uint8Array(sab!);
      bytes.fill(0, 0, 64);                                   // a fresh barrier, as simulate() writes
      bytes.set(life.seedGrid(size.width, size.height), 64);
      const started = performance.now();
      await Promise.all(Array.from({ length: parties }, (_, i) => {
        const [from, to] = life.bandOf(i, parties, size.height);
        return pool!.run({ sab: sab!, width: size.width, height: size.height, from, to, generations: size.generations, parties });
      }));
      return { overriddenDuration: performance.now() - started };
    },
    async stop() {
      await pool?.destroy();
      pool = undefined;
      if (sab !== undefined) checkGrid(`piscina on ${parties} workers`, new Uint8Array(sab, 64 + (size.generations % 2) * cells, cells), expected);
      sab = undefined;
    },
  };
}

/** The grid a single thread on the host computes: what every run must end with. */
function reference(life: LifeModule, size: LifeSize): Uint8Array {
  const grids = [life.seedGrid(size.width, size.height), new Uint8Array(size.width * size.height)];
  for (let g = 0; g < size.generations; g++) life.stepRows(grids[g % 2]!, grids[(g + 1) % 2]!, size.width, size.height, 0, size.height);
  return grids[size.generations % 2]!;
}

function checkGrid(who: string, grid: Uint8Array | undefined, expected: Uint8Array): void {
  if (grid !== undefined && !grid.every((cell, i) => cell === expected[i])) throw new Error(`${who}: the grid differs from a single-thread run`);
}

/** The example's token ring, a task per node: ms per hop as its task 0 times it. */
function machRing(ringModule: RingModule, nodes: number, laps: number): BenchTask {
  let kernel: Kernel | undefined;
  let ring: unknown;
  return {
    name: `mach_msg ring of ${nodes} tasks`,
    async: true,
    async start() {
      kernel = await Kernel.boot({ nodes });
      ring = await ringModule.ring(kernel, nodes);
    },
    async fn() {
      const started = performance.now();
      const perHop = await ringModule.runRing(ring, laps);
      return { overriddenDuration: perHop, overriddenIterationCost: performance.now() - started };
    },
    async stop() {
      await kernel?.shutdown();
      kernel = undefined;
    },
  };
}

/** A ring of `size` workers passing a number over MessagePorts: ms per hop as member 0 times it. */
function portRing(size: number, laps: number): BenchTask {
  let workers: Worker[] = [];
  let failed: Error | undefined;
  let pending: ((error: Error) => void) | undefined;
  // Any member failing fails the run in progress: the token would never come back.
  const fail = (error: Error): void => { failed = error; pending?.(error); };
  const answer = (worker: Worker): Promise<unknown> => new Promise((resolve, reject) => {
    if (failed !== undefined) return reject(failed);
    pending = reject;
    worker.once('message', resolve);
  });
  return {
    name: `MessagePort ring of ${size} workers`,
    async: true,
    async start() {
      const channels = Array.from({ length: size }, () => new MessageChannel());
      workers = channels.map((channel, index) => {
        // Member i receives on channel i and sends on channel i + 1.
        const next = channels[(index + 1) % size]!.port2;
        const data: PortRingData & { inbox: unknown; next: unknown } = { index, size, inbox: channel.port1, next };
        const worker = new Worker(new URL('./fixtures/port-ring-node.js', import.meta.url), { workerData: data, transferList: [channel.port1, next] });
        worker.on('error', fail);
        return worker;
      });
      await Promise.all(workers.map(answer));
    },
    async fn() {
      const started = performance.now();
      const done = answer(workers[0]!);
      workers[0]!.postMessage({ laps });
      const perHop = await done as number;
      return { overriddenDuration: perHop, overriddenIterationCost: performance.now() - started };
    },
    async stop() {
      await Promise.all(workers.map((worker) => worker.terminate()));
      workers = [];
    },
  };
}

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const life = await import(new URL('life.mjs', examples).href) as LifeModule;
  const ringModule = await import(new URL('token-ring.mjs', examples).href) as RingModule;
  const nodes = Math.max(2, availableParallelism());
  const spawn = await compare({
    suite: 'threads',
    title: 'starting code: spawn to the first line and back',
    baseline: 'piscina run',
    options,
    tasks: [piscinaRun(), newWorker(), spawnJoin()],
  });
  const size: LifeSize = options.quick ? { width: 256, height: 256, generations: 20 } : { width: 512, height: 512, generations: 50 };
  const expected = reference(life, size);
  const simulation = await compare({
    suite: 'threads',
    title: `Game of Life ${size.width}×${size.height}, ${size.generations} generations (examples/life.mjs)`,
    baseline: 'norma, 1 node',
    options,
    bench: options.quick ? { time: 500, iterations: 3 } : { time: 2000, iterations: 10 },
    tasks: [
      lifeOnNodes(life, size, 1, expected), lifeOnNodes(life, size, nodes, expected),
      lifeOnPiscina(life, size, 1, expected), lifeOnPiscina(life, size, nodes, expected),
    ],
  });
  const laps = options.quick ? 100 : 1000;
  const ring = await compare({
    suite: 'threads',
    title: `token ring, time per hop (${laps} laps, examples/token-ring.mjs)`,
    baseline: `MessagePort ring of ${nodes} workers`,
    options,
    tasks: [portRing(nodes, laps), machRing(ringModule, nodes, laps)],
  });
  return suiteResult('threads', options, [spawn, simulation, ring]);
}
