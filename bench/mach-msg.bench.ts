/**
 * mach_msg between tasks, run by code in the tasks themselves (Task.execute): an RPC round trip
 * on the same node and across nodes, beside a raw postMessage round trip, a comlink call and the
 * SharedArrayBuffer + Atomics ping-pong floor; and one-way throughput of small messages beside
 * raw per-message postMessage.
 */
import { Worker } from 'node:worker_threads';
import {
  Kernel, MACH_MSG_TYPE_MAKE_SEND, MACH_PORT_LIMITS_INFO, MACH_PORT_QLIMIT_MAX, type Task,
} from 'norma-rt';
import { compare, type BenchTask, type SuiteOptions } from './harness.js';
import { atomicsPingPong, comlinkEcho, postMessageEcho } from './peers.js';
import { suiteResult, type SuiteResult } from './report.js';

const FIXTURE = new URL('./fixtures/mach-msg-task.js', import.meta.url);
const SERVICE = 0x7703;

interface Pair {
  kernel: Kernel;
  server: Task;
  client: Task;
  /** The receive right's name in the server, the send right's name in the client. */
  service: number;
}

/** A server task on `serverNode` with a receive right, and a client on node 0 with a send right. */
async function pair(serverNode: number, qlimit?: number): Promise<Pair> {
  const kernel = await Kernel.boot({ nodes: 2 });
  const server = await kernel.bootstrapTask.createOn(serverNode, { inheritMemory: false });
  const client = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
  const service = await server.allocatePort();
  if (qlimit !== undefined) await server.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: qlimit });
  const send = await server.extractRight(service, MACH_MSG_TYPE_MAKE_SEND);
  await client.insertRight(SERVICE, send, send.type);
  return { kernel, server, client, service };
}

/** mach_msg RPC round trips timed inside the client task, `rounds` per sample. */
function rpc(name: string, serverNode: number, rounds: number): BenchTask {
  let setup: Pair | undefined;
  let served: Promise<unknown> | undefined;
  return {
    name,
    async: true,
    async start() {
      setup = await pair(serverNode);
      served = setup.server.execute(FIXTURE, 'echoServer', setup.service);
    },
    async fn() {
      const started = performance.now();
      const perRoundTrip = await setup!.client.execute(FIXTURE, 'rpcClient', SERVICE, rounds) as number;
      return { overriddenDuration: perRoundTrip, overriddenIterationCost: performance.now() - started };
    },
    async stop() {
      if (setup === undefined) return;
      await setup.client.execute(FIXTURE, 'stop', SERVICE);
      await served;
      await setup.kernel.shutdown();
      setup = undefined;
    },
  };
}

/** One-way throughput: a sender task and a sink task; time per message for `count` messages. */
function oneWay(name: string, serverNode: number, count: number): BenchTask {
  let setup: Pair | undefined;
  return {
    name,
    async: true,
    async start() { setup = await pair(serverNode, MACH_PORT_QLIMIT_MAX); },
    async fn() {
      const started = performance.now();
      await Promise.all([
        setup!.server.execute(FIXTURE, 'sink', setup!.service, count),
        setup!.client.execute(FIXTURE, 'sender', SERVICE, count),
      ]);
      const elapsed = performance.now() - started;
      return { overriddenDuration: elapsed / count, overriddenIterationCost: elapsed };
    },
    async stop() {
      await setup?.kernel.shutdown();
      setup = undefined;
    },
  };
}

/** Raw per-message postMessage to a worker that counts them: time per message for `count`. */
function postMessageOneWay(count: number): BenchTask {
  let worker: Worker | undefined;
  return {
    name: 'postMessage one-way',
    async: true,
    async start() {
      worker = new Worker(`
        const { parentPort } = require('node:worker_threads');
        let seen = 0, want = 0;
        parentPort.on('message', (m) => {
          if (m.want !== undefined) { want = m.want; seen = 0; return; }
          if (++seen === want) parentPort.postMessage('done');
        });`, { eval: true });
    },
    async fn() {
      const body = new Uint8Array(32);
      const done = new Promise((resolve) => worker!.once('message', resolve));
      const started = performance.now();
      worker!.postMessage({ want: count });
      for (let i = 0; i < count; i++) worker!.postMessage({ id: 2, body });
      await done;
      const elapsed = performance.now() - started;
      return { overriddenDuration: elapsed / count, overriddenIterationCost: elapsed };
    },
    async stop() {
      await worker?.terminate();
      worker = undefined;
    },
  };
}

export async function run(options: SuiteOptions): Promise<SuiteResult> {
  const rounds = options.quick ? 200 : 2000;
  const count = options.quick ? 2000 : 20_000;
  const roundTrip = await compare({
    suite: 'mach-msg',
    title: 'round trip between tasks (request + reply on a send-once right)',
    baseline: 'Atomics ping-pong',
    options,
    tasks: [
      atomicsPingPong({ rounds }),
      postMessageEcho(),
      comlinkEcho(),
      rpc('mach_msg RPC, same node', 0, rounds),
      rpc('mach_msg RPC, cross node', 1, rounds),
    ],
  });
  const throughput = await compare({
    suite: 'mach-msg',
    title: 'one-way throughput of 32-byte messages (time per message)',
    baseline: 'postMessage one-way',
    options,
    tasks: [
      postMessageOneWay(count),
      oneWay('mach_msg one-way, same node', 0, count),
      oneWay('mach_msg one-way, cross node', 1, count),
    ],
  });
  return suiteResult('mach-msg', options, [roundTrip, throughput]);
}
