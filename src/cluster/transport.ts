/**
 * The ClusterLink over a NATS server. Each process subscribes to its own inbox subject; frames
 * are authenticated (transport-frame.ts), numbered and acknowledged per pair (transport-peer.ts),
 * so what NATS loses (a slow consumer cut off, a server restart) is seen as a gap, counted,
 * reported and sent again, never lost in silence; a client without the cluster's credentials can
 * publish on its subjects but nothing it sends is delivered. Heartbeats tell a peer we live; a
 * peer silent for deadAfterMs while our own connection is up is down, and so is one that said
 * goodbye. How processes find each other (host / join) is in transport-join.ts.
 */
import { deserialize, serialize } from 'node:v8';
import { Events, type NatsConnection } from 'nats';
import { KernReturn } from '../shared/constants.js';
import type { ClusterLink, ProcessIndex, ServiceHandlers } from './link.js';
import type { ClusterService } from './wire.js';
import { decodeFrame, encodeFrame, FrameKind, subjects, zeroStatistics, type ClusterConnectOptions,
  type ClusterTable, type GapReport, type ResolvedOptions, type TransportStatistics } from './transport-frame.js';
import { hostCluster, joinCluster, type HostSpec, type JoinSpec } from './transport-join.js';
import { Peer, type Send } from './transport-peer.js';

export type { ClusterConnectOptions, ClusterTable, GapReport, TransportStatistics } from './transport-frame.js';
export type { HostSpec, JoinSpec } from './transport-join.js';

const { KERN_NODE_DOWN, KERN_INVALID_ARGUMENT, KERN_FAILURE } = KernReturn;
const EMPTY = new Uint8Array(0);

/** close() waits at most this long for what it sent to be acknowledged before its goodbye. */
const LINGER_MS = 1_000;

type Wire =
  | readonly [0, ClusterService, unknown]
  | readonly [1, ClusterService, number, unknown]
  | readonly [2, number, unknown];

export class NatsTransport implements ClusterLink {
  readonly #nc: NatsConnection;
  readonly #options: ResolvedOptions;
  readonly #peers: (Peer | undefined)[];
  readonly #subjects: string[];
  readonly #services = new Map<ClusterService, ServiceHandlers>();
  readonly #downHandlers: ((proc: ProcessIndex) => void)[] = [];
  readonly #gapHandlers: ((gap: GapReport) => void)[] = [];
  readonly #waiting = new Map<number, { to: ProcessIndex; resolve: (answer: unknown) => void }>();
  readonly #stats: TransportStatistics = zeroStatistics();
  readonly #ticker: NodeJS.Timeout;
  #nextId = 1;
  #stamp = 0;
  #lastTick = performance.now();
  #connected = true;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  /** @internal Made by host() and join() (transport-join.ts), connected and assigned. */
  constructor(nc: NatsConnection, options: ResolvedOptions, readonly table: ClusterTable, readonly self: ProcessIndex,
    rejectedBefore = 0) {
    this.#nc = nc;
    this.#options = options;
    this.#stats.rejected = rejectedBefore;
    const now = performance.now();
    this.#peers = Array.from({ length: table.processes }, (_, index) => index === self ? undefined : new Peer(index, now));
    this.#subjects = this.#peers.map((_, index) => subjects.inbox(options.name, table.clusterId, index));
    const inbox = this.#subjects[self]!;
    nc.subscribe(inbox, { callback: (error, msg) => { if (error === null) this.#onFrame(inbox, msg.data); } });
    void this.#watchStatus();
    void nc.closed().then(() => this.#shutdown());
    const tickMs = Math.max(5, Math.min(25, options.heartbeatMs / 4));
    this.#ticker = setInterval(() => this.#tick(), tickMs);
    this.#ticker.unref();
  }

  /**
   * Boots a cluster: connects, waits for `spec.members` processes to join (see transport-join.ts)
   * and resolves with this process as 0 once each took its index. Rejects naming how many came.
   */
  static host(options: ClusterConnectOptions, spec: HostSpec): Promise<NatsTransport> {
    return hostCluster(options, spec, (...args) => new NatsTransport(...args));
  }

  /** Joins a cluster: waits (until `spec.signal` aborts) for a host to assign this process. */
  static join(options: ClusterConnectOptions, spec: JoinSpec = {}): Promise<{ link: NatsTransport; assignment: unknown }> {
    return joinCluster(options, spec, (...args) => new NatsTransport(...args));
  }

  get processes(): number { return this.table.processes; }
  get clusterId(): string { return this.table.clusterId; }
  /** Whether our NATS connection is up now. */
  get connected(): boolean { return this.#connected && this.#state !== 'closed'; }

  post(to: ProcessIndex, service: ClusterService, payload: unknown): void {
    this.#checkIndex(to);
    if (this.isDown(to) || this.#state !== 'open') return;
    this.#send(to, serialize([0, service, payload] satisfies Wire));
  }

  request(to: ProcessIndex, service: ClusterService, payload: unknown): Promise<unknown> {
    if (!Number.isInteger(to) || to < 0 || to >= this.processes) return Promise.resolve({ kr: KERN_INVALID_ARGUMENT });
    if (this.isDown(to) || this.#state !== 'open') return Promise.resolve({ kr: KERN_NODE_DOWN });
    const id = this.#nextId++;
    let bytes: Buffer;
    try {
      bytes = serialize([1, service, id, payload] satisfies Wire);
    } catch {
      return Promise.resolve({ kr: KERN_INVALID_ARGUMENT });
    }
    return new Promise((resolve) => {
      this.#waiting.set(id, { to, resolve });
      this.#send(to, bytes);
    });
  }

  serve(service: ClusterService, handlers: ServiceHandlers): void {
    if (this.#services.has(service)) throw new Error(`service ${service} served twice`);
    this.#services.set(service, handlers);
  }

  onPeerDown(handler: (proc: ProcessIndex) => void): void { this.#downHandlers.push(handler); }

  /** Called for each gap NATS left in a peer's stream (after it was counted; it is resent). */
  onGap(handler: (gap: GapReport) => void): void { this.#gapHandlers.push(handler); }

  isDown(proc: ProcessIndex): boolean {
    if (proc === this.self) return this.#state !== 'open';
    return this.#peers[proc]?.down ?? true;
  }

  statistics(): TransportStatistics {
    const live = this.#live();
    return {
      ...this.#stats,
      inFlight: live.reduce((sum, peer) => sum + peer.inFlight, 0),
      queued: live.reduce((sum, peer) => sum + peer.queued, 0),
      pendingRequests: this.#waiting.size,
    };
  }

  /**
   * Waits (at most a second) for what was sent to be acknowledged, says goodbye, drains and
   * closes the NATS connection. Requests still waiting answer KERN_NODE_DOWN. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#state !== 'open') return;
      this.#state = 'closing';
      const deadline = performance.now() + LINGER_MS;
      while (this.#connected && performance.now() < deadline && this.#live().some((peer) => peer.inFlight + peer.queued > 0)) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      for (const peer of this.#live()) this.#sender(peer)(FrameKind.goodbye, 0, 0, EMPTY);
      this.#shutdown();
      try {
        await this.#nc.drain();
      } catch {
        // Already closed (the server went away for good): nothing left to flush.
      }
    })();
    return this.#closing;
  }

  /** Closes the connection at once, no goodbye: to peers this process looks killed. For tests. */
  async crashForTest(): Promise<void> {
    this.#shutdown();
    await this.#nc.close().catch(() => undefined);
  }

  /** @internal For host(): whether `proc` was heard from (it took its assignment). */
  heardFrom(proc: ProcessIndex): boolean { return (this.#peers[proc]?.lastStamp ?? 0) > 0; }

  /** @internal Sends every live peer a heartbeat now (join: tells the host we took our index). */
  heartbeat(): void {
    for (const peer of this.#live()) this.#sender(peer)(FrameKind.ack, 0, 0, EMPTY);
  }

  #live(): Peer[] { return this.#peers.filter((peer): peer is Peer => peer !== undefined && !peer.down); }

  #checkIndex(to: ProcessIndex): void {
    if (!Number.isInteger(to) || to < 0 || to >= this.processes) {
      throw new RangeError(`process ${to} is not in this cluster of ${this.processes}`);
    }
  }

  #send(to: ProcessIndex, bytes: Uint8Array): void {
    if (to === this.self) {
      // Our own services: after the current turn, as a peer's frame would be, in order.
      setImmediate(() => { if (this.#state !== 'closed') this.#deliver(this.self, bytes); });
      return;
    }
    const peer = this.#peers[to]!;
    peer.enqueue(bytes);
    peer.pump(this.#sender(peer), performance.now());
  }

  /** The Send for `peer`: stamps, authenticates and publishes one frame, carrying our ack. */
  #sender(peer: Peer): Send {
    return (kind, flags, seq, payload) => {
      if (!this.#connected || this.#state === 'closed') return false;
      const bytes = encodeFrame(this.#options.key, this.#subjects[peer.index]!, {
        kind, flags, from: this.self, stamp: ++this.#stamp, seq, ack: peer.ackToSend, payload,
      });
      try {
        this.#nc.publish(this.#subjects[peer.index]!, bytes);
      } catch {
        return false; // the connection closed under us; what was not sent stays for a resend
      }
      this.#stats.sent++;
      peer.sent(performance.now());
      return true;
    };
  }

  #onFrame(subject: string, data: Uint8Array): void {
    if (this.#state === 'closed') return;
    this.#stats.received++;
    const frame = decodeFrame(this.#options.key, subject, data);
    const peer = frame === undefined ? undefined : this.#peers[frame.from];
    if (frame === undefined || peer === undefined) {
      this.#stats.rejected++;
      return;
    }
    if (peer.down) {
      // It may not know it is down to us (it stalled, or its connection did): it learns now.
      this.#stats.dropped++;
      if (frame.kind !== FrameKind.goodbye && peer.goodbyeDue(performance.now())) {
        this.#sender(peer)(FrameKind.goodbye, 0, 0, EMPTY);
      }
      return;
    }
    if (frame.stamp <= peer.lastStamp) {
      this.#stats.duplicates++;
      return;
    }
    const now = performance.now();
    peer.lastStamp = frame.stamp;
    peer.lastHeardAt = now;
    const send = this.#sender(peer);
    if (peer.acknowledge(frame.ack, now)) peer.pump(send, now);
    switch (frame.kind) {
      case FrameKind.data: {
        const receipt = peer.receive(frame);
        if (receipt.kind === 'duplicate') this.#stats.duplicates++;
        else if (receipt.kind === 'gap') this.#gap(peer, receipt.expected, frame.seq, receipt.first, now);
        else if (receipt.kind === 'message') this.#deliver(peer.index, receipt.bytes);
        if (peer.ackNow && !peer.down) send(FrameKind.ack, 0, 0, EMPTY);
        break;
      }
      case FrameKind.nack:
        this.#stats.retransmits += peer.resend(frame.seq, send, now);
        break;
      case FrameKind.goodbye:
        this.#peerDown(peer);
        break;
      case FrameKind.ack:
        break;
      default:
        this.#stats.rejected++; // join frames have no business on an inbox
    }
  }

  #gap(peer: Peer, expected: number, received: number, first: boolean, now: number): void {
    if (first) {
      this.#stats.gaps++;
      this.#notify(this.#gapHandlers, { from: peer.index, expected, received });
    }
    if (peer.nackDue(now)) this.#sender(peer)(FrameKind.nack, 0, expected, EMPTY);
  }

  #deliver(from: ProcessIndex, bytes: Uint8Array): void {
    let wire: Wire;
    try {
      wire = deserialize(bytes) as Wire;
      if (!Array.isArray(wire)) throw new TypeError('not a message');
    } catch {
      this.#stats.rejected++;
      return;
    }
    if (wire[0] === 2) {
      const waiting = this.#waiting.get(wire[1]);
      if (waiting === undefined || waiting.to !== from) {
        this.#stats.dropped++;
        return;
      }
      this.#waiting.delete(wire[1]);
      this.#stats.delivered++;
      waiting.resolve(wire[2]);
      return;
    }
    const handlers = this.#services.get(wire[1]);
    if (wire[0] === 0) {
      if (handlers?.message === undefined) {
        this.#stats.dropped++;
        return;
      }
      this.#stats.delivered++;
      try {
        handlers.message(from, wire[2]);
      } catch {
        this.#stats.handlerErrors++;
      }
      return;
    }
    this.#stats.delivered++;
    void this.#answer(from, wire[2], handlers, wire[3]);
  }

  /** Runs a request's handler and sends its answer; a handler that throws answers KERN_FAILURE. */
  async #answer(from: ProcessIndex, id: number, handlers: ServiceHandlers | undefined, payload: unknown): Promise<void> {
    let answer: unknown = { kr: KERN_INVALID_ARGUMENT };
    if (handlers?.request !== undefined) {
      try {
        answer = await handlers.request(from, payload);
      } catch {
        this.#stats.handlerErrors++;
        answer = { kr: KERN_FAILURE };
      }
    }
    if (this.#state === 'closed' || this.isDown(from)) return;
    let bytes: Buffer;
    try {
      bytes = serialize([2, id, answer] satisfies Wire);
    } catch {
      this.#stats.handlerErrors++;
      bytes = serialize([2, id, { kr: KERN_FAILURE }] satisfies Wire);
    }
    this.#send(from, bytes);
  }

  #peerDown(peer: Peer): void {
    if (peer.down) return;
    peer.drop();
    this.#stats.peersDown++;
    for (const [id, waiting] of this.#waiting) {
      if (waiting.to !== peer.index) continue;
      this.#waiting.delete(id);
      waiting.resolve({ kr: KERN_NODE_DOWN });
    }
    this.#notify(this.#downHandlers, peer.index);
  }

  /** Calls each handler; one that throws is counted, never lets the others miss the news. */
  #notify<T>(handlers: readonly ((value: T) => void)[], value: T): void {
    for (const handler of handlers) {
      try {
        handler(value);
      } catch {
        this.#stats.handlerErrors++;
      }
    }
  }

  /** Each pair's timers (transport-peer.ts), unless this process stalled or is disconnected. */
  #tick(): void {
    const now = performance.now();
    const late = now - this.#lastTick;
    this.#lastTick = now;
    if (this.#state === 'closed' || !this.#connected) return;
    const { heartbeatMs, deadAfterMs } = this.#options;
    if (late > 2 * heartbeatMs) {
      // This process stalled (a long turn, a GC pause): the peers' frames wait unread in our
      // socket, so their silence proves nothing yet; their clocks restart.
      this.#stats.stalls++;
      for (const peer of this.#live()) peer.lastHeardAt = now;
    }
    for (const peer of this.#live()) {
      const resent = peer.tick(this.#sender(peer), now, heartbeatMs, deadAfterMs);
      if (resent === 'silent') this.#peerDown(peer);
      else this.#stats.retransmits += resent;
    }
  }

  async #watchStatus(): Promise<void> {
    for await (const status of this.#nc.status()) {
      if (status.type === Events.Disconnect) {
        this.#connected = false;
        this.#stats.disconnects++;
      } else if (status.type === Events.Reconnect) {
        this.#connected = true;
        this.#stats.reconnects++;
        this.#resync();
      } else if (status.type === Events.Error) {
        this.#stats.serverErrors++;
        if (/slow consumer/i.test(String(status.data))) this.#stats.slowConsumers++;
      }
    }
  }

  /**
   * After a reconnect: the clocks restart (peers could not reach us either), what is in flight
   * goes again, and each peer is asked to resend from where we are (it may not know we lost it).
   */
  #resync(): void {
    const now = performance.now();
    for (const peer of this.#live()) {
      peer.lastHeardAt = now;
      const send = this.#sender(peer);
      send(FrameKind.nack, 0, peer.expected, EMPTY);
      this.#stats.retransmits += peer.resend(0, send, now, true);
      peer.pump(send, now);
    }
  }

  /** Nothing more goes out or comes in; requests still waiting answer KERN_NODE_DOWN. */
  #shutdown(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearInterval(this.#ticker);
    for (const waiting of this.#waiting.values()) waiting.resolve({ kr: KERN_NODE_DOWN });
    this.#waiting.clear();
  }
}
