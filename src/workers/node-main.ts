/**
 * A node's worker entry: waits for its NodeStartup, builds the node kernel, answers NodeReady,
 * then serves NodeCalls one message at a time. Imports shared/ and actors/ only, never host code.
 */
import { parentPort } from 'node:worker_threads';
import { NodeKernel } from '../actors/kern/node-kernel.js';
import type { MessagePort } from 'node:worker_threads';
import { KERN_FAILURE, KERN_NODE_DOWN } from '../shared/constants.js';
import { decodeKmsg } from '../shared/kmsg-wire.js';
import { fromWire, toWire } from '../actors/ipc/message.js';
import { thrownError, uncloneableReply } from '../actors/kern/task-code.js';
import { Doorbell, RingReader, RingWriter, serve as serveRings } from './channel.js';
import { serializeError, type ForkReply, type HostToNode, type NodeApi, type NodeCall, type NodeFault, type NodeReturn, type NodeStartup, type NodeToHost, type NodeToNode, type TaskImage } from '../shared/protocol.js';
import type { NodeId, TaskId, MemoryObjectName } from '../shared/types.js';

if (parentPort === null) throw new Error('norma: node-main must run in a worker thread');
const port = parentPort;
let kernel: NodeKernel | undefined;
let peers: readonly (MessagePort | null)[] = [];
/**
 * Images sent to another node and not yet adopted there, by fork call id, with the word that
 * decides who owns their references (NodeAdopt.claim) and, for a teleport, the parent set aside.
 * If that node dies first, their references are dropped here, so its crash leaks no memory.
 */
interface Unadopted {
  readonly node: number;
  readonly image: TaskImage;
  readonly claim: Int32Array;
  readonly parent: TaskId | undefined;
}
const unadopted = new Map<number, Unadopted>();
const CLAIM_ADOPTED = 1;
const CLAIM_ABANDONED = 2;

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
    answer({ op: 'fault', id, error: thrownError(error) });
    return;
  }
  if (method === 'taskFork' && answer === toHost && forwardImage(id, result as ForkReply)) return;
  // Most routines are synchronous: answer them without a trip through the microtask queue.
  if (result instanceof Promise) {
    result.then((value) => deliver(answer, id, method, value),
      (error) => answer({ op: 'fault', id, error: thrownError(error) }));
  } else {
    deliver(answer, id, method, result);
  }
}

/**
 * Answers a call with its result. A result structured clone refuses (task code returned a
 * function, a symbol, an object holding one) makes postMessage throw here, which would kill the
 * node and every task on it: that call fails with KERN_FAILURE naming the cause instead.
 */
function deliver(answer: (message: NodeReturn | NodeFault) => void, id: number, method: string, result: unknown): void {
  try {
    answer({ op: 'return', id, result });
  } catch (error) {
    answer({ op: 'return', id, result: uncloneableReply(method, result, error) });
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

/**
 * Sends a captured image to the child's node, which answers call `id` (see NodeAdopt): to the
 * host, or for a teleport through this node, which terminates the parent first.
 */
function forwardImage(id: number, reply: ForkReply): boolean {
  if (reply.image === undefined || reply.childNode === undefined) return false;
  const peer = peers[reply.childNode];
  if (peer == null) return false;
  const claim = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  const adopt: NodeToNode = {
    op: 'adopt', id, image: reply.image, released: reply.released ?? [], claim, teleport: reply.teleported !== undefined,
  };
  unadopted.set(id, { node: reply.childNode, image: reply.image, claim: new Int32Array(claim), parent: reply.teleported });
  if (closedPeers.has(reply.childNode)) peerClosed(kernel!, reply.childNode);
  else peer.postMessage(adopt);
  return true;
}

function fromPeer(node: NodeKernel, peer: number, message: NodeToNode): void {
  switch (message.op) {
    case 'adopt': {
      const back = peers[peer];
      // The parent's node gave the image up (it thought this node dead): it dropped the references.
      if (Atomics.compareExchange(new Int32Array(message.claim), 0, 0, CLAIM_ADOPTED) !== 0) return;
      serve(node, { op: 'call', id: message.id, method: 'taskAdopt', args: [message.image, message.released] },
        message.teleport
          ? (answer) => back?.postMessage({ op: 'adopted', id: message.id, answer } satisfies NodeToNode)
          // After the answer, so confirming costs the caller nothing.
          : (answer) => { toHost(answer); back?.postMessage({ op: 'adopted', id: message.id } satisfies NodeToNode); });
      return;
    }
    case 'adopted': {
      const pending = unadopted.get(message.id);
      unadopted.delete(message.id);
      if (pending?.parent !== undefined && message.answer !== undefined) teleported(node, pending.parent, message.answer);
      return;
    }
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
 * The child's node answered a teleport: with a child built, the parent is terminated and what
 * that released joins the answer; otherwise the parent is back. The host hears only then, so
 * its next call naming the parent finds it terminated (or still there).
 */
function teleported(node: NodeKernel, parent: TaskId, answer: NodeReturn | NodeFault): void {
  const result = answer.op === 'return' ? answer.result as ForkReply : undefined;
  const released = node.teleportSettled(parent, result?.child !== undefined);
  toHost(result?.child === undefined ? answer
    : { op: 'return', id: answer.id, result: { ...result, released: [...(result.released ?? []), ...released] } });
}

/**
 * A peer node died (its host already failed the calls waiting on it). The images it never
 * claimed are dropped here, objects homed elsewhere going to their pagers directly; a teleport's
 * parent comes back unless the child's node had begun to build the child (the task moved and
 * died with that node). Then the node kernel sweeps up what the peer held (NodeKernel.nodeDown).
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
    const abandoned = Atomics.compareExchange(pending.claim, 0, 0, CLAIM_ABANDONED) === 0;
    const released = pending.parent === undefined ? [] : node.teleportSettled(pending.parent, !abandoned);
    if (abandoned) released.push(...node.imageRelease(pending.image).released);
    const homes = new Map<number, MemoryObjectName[]>();
    for (const object of released) homes.set(object.home, [...(homes.get(object.home) ?? []), object]);
    for (const [home, objects] of homes) peers[home]?.postMessage({ op: 'release', objects } satisfies NodeToNode);
  }
  node.nodeDown(peer as NodeId);
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
  // The host transferred real MessagePorts; protocol.ts names them by shape only.
  peers = message.peers as readonly (MessagePort | null)[];
  peers.forEach((peer, index) => {
    peer?.on('message', (forwarded: NodeToNode) => fromPeer(started, index, forwarded));
    peer?.on('close', () => { if (!closedPeers.has(index)) peerClosed(started, index); });
  });
  send({ op: 'ready', node: message.node });
});

export type { NodeApi };
