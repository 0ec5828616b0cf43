/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel, answers NodeReady,
 * then serves NodeCalls one message at a time. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/node-kernel.js';
import type { MessagePort } from 'node:worker_threads';
import {
  serializeError, type ForkReply, type HostToNode, type NodeApi, type NodeCall, type NodeToHost,
  type NodeToNode,
} from '../shared/protocol.js';

if (parentPort === null) throw new Error('norma: node-main must run in a worker thread');
const port = parentPort;
let kernel: NodeKernel | undefined;
let peers: readonly (MessagePort | null)[] = [];

const send = (message: NodeToHost) => port.postMessage(message);

function fault(id: number, error: unknown): void {
  send({ op: 'fault', id, error: serializeError(error) });
}

function serve(node: NodeKernel, { id, method, args }: NodeCall): void {
  let result: unknown;
  try {
    const routine = node[method] as ((...routineArgs: unknown[]) => unknown) | undefined;
    if (typeof routine !== 'function') throw new TypeError(`no routine ${String(method)}`);
    result = routine.apply(node, args as unknown[]);
  } catch (error) {
    fault(id, error);
    return;
  }
  if (method === 'taskFork' && forwardImage(id, result as ForkReply)) return;
  // Most routines are synchronous: answer them without a trip through the microtask queue.
  if (result instanceof Promise) {
    result.then((value) => send({ op: 'return', id, result: value }), (error) => fault(id, error));
  } else {
    send({ op: 'return', id, result });
  }
}

/** Sends a captured image to the child's node, which answers call `id` (see NodeAdopt). */
function forwardImage(id: number, reply: ForkReply): boolean {
  if (reply.image === undefined || reply.childNode === undefined) return false;
  const peer = peers[reply.childNode];
  if (peer == null) return false;
  const adopt: NodeToNode = { op: 'adopt', id, image: reply.image, released: reply.released ?? [] };
  peer.postMessage(adopt);
  return true;
}

function adopt(node: NodeKernel, { id, image, released }: NodeToNode): void {
  try {
    send({ op: 'return', id, result: node.taskAdopt(image, released) });
  } catch (error) {
    fault(id, error);
  }
}

port.on('message', (message: HostToNode) => {
  if (message.op === 'call') {
    if (kernel === undefined) fault(message.id, new Error('node not started'));
    else serve(kernel, message);
    return;
  }
  const started = new NodeKernel(message);
  kernel = started;
  peers = message.peers;
  for (const peer of peers) peer?.on('message', (forwarded: NodeToNode) => adopt(started, forwarded));
  send({ op: 'ready', node: message.node });
});

export type { NodeApi };
