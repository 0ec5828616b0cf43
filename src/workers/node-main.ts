/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel, answers NodeReady,
 * then serves NodeCalls one message at a time. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/node-kernel.js';
import type { MessagePort } from 'node:worker_threads';
import {
  serializeError, type ForkReply, type HostToNode, type MemoryObjectName, type NodeApi, type NodeCall,
  type NodeToHost, type NodeToNode, type TaskImage,
} from '../shared/protocol.js';

if (parentPort === null) throw new Error('norma: node-main must run in a worker thread');
const port = parentPort;
let kernel: NodeKernel | undefined;
let peers: readonly (MessagePort | null)[] = [];
/**
 * Images sent to another node and not yet adopted there, by fork call id. If that node dies
 * first, their references are dropped here, so its crash leaks no memory.
 */
const unadopted = new Map<number, { readonly node: number; readonly image: TaskImage }>();

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
  unadopted.set(id, { node: reply.childNode, image: reply.image });
  if (closedPeers.has(reply.childNode)) peerClosed(kernel!, reply.childNode);
  else peer.postMessage(adopt);
  return true;
}

function fromPeer(node: NodeKernel, peer: number, message: NodeToNode): void {
  switch (message.op) {
    case 'adopt':
      try {
        send({ op: 'return', id: message.id, result: node.taskAdopt(message.image, message.released) });
      } catch (error) {
        fault(message.id, error);
      }
      // After the answer, so confirming costs the caller nothing.
      peers[peer]?.postMessage({ op: 'adopted', id: message.id } satisfies NodeToNode);
      return;
    case 'adopted':
      unadopted.delete(message.id);
      return;
    case 'release':
      node.pagerRelease(message.objects);
      return;
    case 'ipc':
      node.receiveTraffic(message.traffic);
      return;
  }
}

const closedPeers = new Set<number>();

/**
 * A peer node died (its host already failed the calls waiting on it): drop the references of
 * the images it never adopted, handing objects homed elsewhere to their pagers directly.
 */
function peerClosed(node: NodeKernel, peer: number): void {
  closedPeers.add(peer);
  for (const [id, pending] of unadopted) {
    if (pending.node !== peer) continue;
    unadopted.delete(id);
    const homes = new Map<number, MemoryObjectName[]>();
    for (const object of node.imageRelease(pending.image).released) {
      homes.set(object.home, [...(homes.get(object.home) ?? []), object]);
    }
    for (const [home, objects] of homes) peers[home]?.postMessage({ op: 'release', objects } satisfies NodeToNode);
  }
}

port.on('message', (message: HostToNode) => {
  if (message.op === 'call') {
    if (kernel === undefined) fault(message.id, new Error('node not started'));
    else serve(kernel, message);
    return;
  }
  if (message.op === 'node-down') {
    if (kernel !== undefined && !closedPeers.has(message.node)) peerClosed(kernel, message.node);
    return;
  }
  const started = new NodeKernel(message, (node, traffic) => peers[node]?.postMessage(traffic));
  kernel = started;
  peers = message.peers;
  peers.forEach((peer, index) => {
    peer?.on('message', (forwarded: NodeToNode) => fromPeer(started, index, forwarded));
    peer?.on('close', () => { if (!closedPeers.has(index)) peerClosed(started, index); });
  });
  send({ op: 'ready', node: message.node });
});

export type { NodeApi };
