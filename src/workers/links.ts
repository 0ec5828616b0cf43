/**
 * A node's links to the other nodes: the peer channels the host handed it at startup (a
 * MessagePort per node) and the message fast path (a ring per node, one doorbell). Carries
 * NodeToNode traffic both ways and the NodeApi calls this node makes on its peers, and knows
 * which peers are down: a peer's death, however learnt (its channel closed, or the host's
 * NodeDown), fails exactly the calls waiting on it, then is passed on once (LinkHandlers.down).
 */
import type { MessagePort } from 'node:worker_threads';
import type { NodeLinks as KernelLinks } from '../actors/kern/node-kernel.js';
import { fromWire, toWire } from '../actors/ipc/message.js';
import { KERN_FAILURE, KERN_NODE_DOWN } from '../shared/constants.js';
import { decodeKmsg } from '../shared/kmsg-wire.js';
import type { IpcTraffic, NodeApi, NodeFault, NodeReturn, NodeStartup, NodeToNode } from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';
import { serve as serveRings } from './channel.js';
import { Doorbell } from './doorbell.js';
import { RingReader, RingWriter } from './ring.js';
import { PendingCalls } from '../shared/pending-calls.js';

/** What arrives from peers, less the answers to our own calls (the links settle those). */
export type PeerMessage = Exclude<NodeToNode, NodeReturn | NodeFault>;

export interface LinkHandlers {
  /** A message a peer posted. */
  message(from: NodeId, message: PeerMessage): void;
  /** IPC traffic that came through a ring (a kmsg). */
  traffic(traffic: IpcTraffic): void;
  /** Another node said a queue place may be free for a sender blocked here. */
  places(): void;
  /** `node` went down: called once, after the calls waiting on it failed. */
  down(node: NodeId): void;
}

interface PeerCall {
  readonly node: NodeId;
  readonly resolve: (reply: { kr: number }) => void;
}

/**
 * The calls this node made on its peers, by id (ids are this node's; the answer comes back on
 * the channel the call went out on). Like the host's CallTable: every call settles once, by its
 * answer or by its node's death, and a node's death settles exactly the calls posted to it.
 * A NodeApi routine answers Mach errors in its reply and never rejects for one, so a peer call
 * resolves on every path the callee can take: its reply, KERN_FAILURE for a fault (a bug or
 * arguments a routine could not take), KERN_NODE_DOWN when its node dies first. It rejects only
 * when the call cannot be posted (an argument structured clone refuses), as postMessage threw.
 */
class PeerCalls extends PendingCalls<PeerCall> {
  /** Answers every call posted to `node` with `kr`. */
  failNode(node: NodeId, kr: number): void {
    for (const call of this.settleWhere((pending) => pending.node === node)) call.resolve({ kr });
  }
}

export class NodeLinks implements KernelLinks {
  readonly #peers: readonly (MessagePort | null)[];
  /** Kernel messages to each node go through its ring when they fit; everything else by postMessage. */
  readonly #writers: readonly (RingWriter | null)[];
  readonly #readers: readonly (RingReader | null)[];
  readonly #doorbell: Doorbell;
  readonly #calls = new PeerCalls();
  readonly #down = new Set<NodeId>();
  #handlers: LinkHandlers | undefined;

  constructor(startup: Pick<NodeStartup, 'node' | 'nodes' | 'peers' | 'rings' | 'doorbell'>) {
    const { node: self, nodes, rings } = startup;
    // The host transferred real MessagePorts; protocol.ts names them by shape only.
    this.#peers = startup.peers as readonly (MessagePort | null)[];
    this.#writers = Array.from({ length: nodes }, (_, to) => {
      const ring = rings[self * nodes + to];
      return ring == null ? null : new RingWriter(ring);
    });
    this.#readers = Array.from({ length: nodes }, (_, from) => {
      const ring = rings[from * nodes + self];
      return ring == null ? null : new RingReader(ring);
    });
    this.#doorbell = new Doorbell(startup.doorbell, self);
  }

  /**
   * Starts taking traffic: serves the incoming rings for as long as the worker lives and listens
   * on every peer channel. Once only.
   */
  listen(handlers: LinkHandlers): void {
    if (this.#handlers !== undefined) throw new Error('norma: links listen once');
    this.#handlers = handlers;
    serveRings(this.#readers, this.#doorbell, (record) => handlers.traffic({ op: 'kmsg', kmsg: fromWire(decodeKmsg(record)) }),
      { onPlaces: () => handlers.places() })
      .catch((error: unknown) => setImmediate(() => { throw error; }));
    this.#peers.forEach((peer, index) => {
      peer?.on('message', (message: NodeToNode) => this.#receive(index as NodeId, message));
      peer?.on('close', () => this.peerDown(index as NodeId));
    });
  }

  /** One-way traffic to `node` (kmsgs through its ring when they fit). A post to a dead node is lost. */
  readonly post = (node: NodeId, message: NodeToNode): void => {
    if (message.op === 'ipc' && message.traffic.op === 'kmsg') {
      const wire = toWire(message.traffic.kmsg);
      if (wire !== null && this.#writers[node]?.tryWriteKmsg(wire) === true) {
        this.#doorbell.ring(node);
        return;
      }
    }
    this.#peers[node]?.postMessage(message);
  };

  /** Tells `node` a queue place may be free for its blocked senders (its doorbell). */
  readonly wakeSenders = (node: NodeId): void => {
    if (node !== this.#doorbell.node && !this.#down.has(node)) this.#doorbell.wakeSenders(node);
  };

  /** Runs `method` of `node`'s NodeApi (see PeerCalls for how it settles). */
  readonly callNode = (node: NodeId, method: keyof NodeApi, args: readonly unknown[]): Promise<{ kr: number }> => {
    const peer = this.#peers[node];
    if (peer == null || this.#down.has(node)) return Promise.resolve({ kr: KERN_NODE_DOWN });
    return new Promise((resolve, reject) => {
      const id = this.#calls.add({ node, resolve });
      try {
        peer.postMessage({ op: 'call', id, method, args } satisfies NodeToNode);
      } catch (error) {
        this.#calls.settle(id);
        reject(error);
      }
    });
  };

  /** Whether this node has a channel to `node` (not itself, not out of range). */
  reaches(node: NodeId): boolean {
    return this.#peers[node] != null;
  }

  isDown(node: NodeId): boolean {
    return this.#down.has(node);
  }

  /**
   * `node` is down (its channel closed, or the host said so): fails the calls waiting on it,
   * then tells the handlers. Later reports of the same death do nothing.
   */
  peerDown(node: NodeId): void {
    if (this.#handlers === undefined || this.#down.has(node)) return;
    this.#down.add(node);
    this.#calls.failNode(node, KERN_NODE_DOWN);
    this.#handlers.down(node);
  }

  #receive(from: NodeId, message: NodeToNode): void {
    if (message.op === 'return' || message.op === 'fault') {
      this.#calls.settle(message.id)?.resolve(message.op === 'return' ? message.result as { kr: number } : { kr: KERN_FAILURE });
      return;
    }
    this.#handlers!.message(from, message);
  }
}
