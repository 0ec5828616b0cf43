/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel, answers NodeReady,
 * then serves NodeCalls one message at a time. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/node-kernel.js';
import type { MessagePort } from 'node:worker_threads';
import { KERN_FAILURE, KERN_NODE_DOWN } from '../shared/constants.js';
import { decodeKmsg } from '../shared/kmsg-wire.js';
import { fromWire, toWire } from '../actors/message.js';
import { Doorbell, RingReader, RingWriter, serve as serveRings } from './channel.js';
import {
  serializeError, type ForkReply, type HostToNode, type MemoryObjectName, type NodeApi, type NodeCall,
  type NodeFault, type NodeReturn, type NodeStartup, type NodeToHost, type NodeToNode, type TaskImage,
} from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';

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
const toHost = (message: NodeReturn | NodeFault) => port.postMessage(message);

function fault(id: number, error: unknown): void {
  send({ op: 'fault', id, error: serializeError(error) });
}

/** Runs a NodeCall and answers it through `answer` (the host, or the peer that called). */
function serve(node: NodeKernel, { id, method, args }: NodeCall, answer: (message: NodeReturn | NodeFault) => void): void {
  let result: unknown;
  try {
    const routine = node[method] as ((...routineArgs: unknown[]) => unknown) | undefined;
    if (typeof routine !== 'function') throw new TypeError(`no routine ${String(method)}`);
    result = routine.apply(node, args as unknown[]);
  } catch (error) {
    answer({ op: 'fault', id, error: serializeError(error) });
    return;
  }
  if (method === 'taskFork' && answer === toHost && forwardImage(id, result as ForkReply)) return;
  // Most routines are synchronous: answer them without a trip through the microtask queue.
  if (result instanceof Promise) {
    result.then((value) => answer({ op: 'return', id, result: value }),
      (error) => answer({ op: 'fault', id, error: serializeError(error) }));
  } else {
    answer({ op: 'return', id, result });
  }
}

/** Calls this node made on peers (a task operated on through its kernel port), by id. */
const peerCalls = new Map<number, { readonly node: number; readonly resolve: (reply: { kr: number }) => void }>();
let nextPeerCall = 1;

function callNode(node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }> {
  const peer = peers[node];
  if (peer == null || closedPeers.has(node)) return Promise.resolve({ kr: KERN_NODE_DOWN });
  const id = nextPeerCall++;
  return new Promise((resolve) => {
    peerCalls.set(id, { node, resolve });
    peer.postMessage({ op: 'call', id, method, args } satisfies NodeToNode);
  });
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
    case 'adopt': {
      // After the answer, so confirming costs the caller nothing.
      const adopted = () => peers[peer]?.postMessage({ op: 'adopted', id: message.id } satisfies NodeToNode);
      serve(node, { op: 'call', id: message.id, method: 'taskAdopt', args: [message.image, message.released] },
        (answer) => { toHost(answer); adopted(); });
      return;
    }
    case 'adopted':
      unadopted.delete(message.id);
      return;
    case 'release':
      node.pagerRelease(message.objects);
      return;
    case 'ipc':
      node.receiveTraffic(message.traffic);
      return;
    case 'call':
      serve(node, message, (answer) => peers[peer]?.postMessage(answer));
      return;
    case 'return':
    case 'fault': {
      const call = peerCalls.get(message.id);
      peerCalls.delete(message.id);
      call?.resolve(message.op === 'return' ? message.result as { kr: number } : { kr: KERN_FAILURE });
      return;
    }
  }
}

const closedPeers = new Set<number>();

/** Kernel messages to each node go through its ring when they fit; everything else by postMessage. */
let writers: readonly (RingWriter | null)[] = [];
let doorbell: Doorbell | undefined;

function post(node: NodeId, message: NodeToNode): void {
  if (message.op === 'ipc' && message.traffic.op === 'kmsg') {
    const wire = toWire(message.traffic.kmsg);
    if (wire !== null && writers[node]?.tryWriteKmsg(wire) === true) {
      doorbell!.ring(node);
      return;
    }
  }
  peers[node]?.postMessage(message);
}

/** Serves this node's incoming rings for as long as the worker lives. */
function startFastPath(node: NodeKernel, startup: NodeStartup): void {
  const nodes = startup.nodes;
  writers = Array.from({ length: nodes }, (_, to) => {
    const ring = startup.rings[startup.node * nodes + to];
    return ring == null ? null : new RingWriter(ring);
  });
  const readers = Array.from({ length: nodes }, (_, from) => {
    const ring = startup.rings[from * nodes + startup.node];
    return ring == null ? null : new RingReader(ring);
  });
  doorbell = new Doorbell(startup.doorbell, startup.node);
  serveRings(readers, doorbell, (record) => node.receiveTraffic({ op: 'kmsg', kmsg: fromWire(decodeKmsg(record)) }))
    .catch((error: unknown) => setImmediate(() => { throw error; }));
}

/**
 * A peer node died (its host already failed the calls waiting on it): drop the references of
 * the images it never adopted, handing objects homed elsewhere to their pagers directly.
 */
function peerClosed(node: NodeKernel, peer: number): void {
  closedPeers.add(peer);
  for (const [id, call] of peerCalls) {
    if (call.node !== peer) continue;
    peerCalls.delete(id);
    call.resolve({ kr: KERN_NODE_DOWN });
  }
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
    else serve(kernel, message, toHost);
    return;
  }
  if (message.op === 'node-down') {
    if (kernel !== undefined && !closedPeers.has(message.node)) peerClosed(kernel, message.node);
    return;
  }
  const started = new NodeKernel(message, { post: (node, traffic) => post(node, traffic), callNode });
  startFastPath(started, message);
  kernel = started;
  peers = message.peers;
  peers.forEach((peer, index) => {
    peer?.on('message', (forwarded: NodeToNode) => fromPeer(started, index, forwarded));
    peer?.on('close', () => { if (!closedPeers.has(index)) peerClosed(started, index); });
  });
  send({ op: 'ready', node: message.node });
});

export type { NodeApi };
