/**
 * A ClusterLink between kernels of one process, for the cluster's unit tests: payloads are copied
 * with v8 serialization (as across processes, so a SharedArrayBuffer is refused), delivered in
 * order on a later macrotask; `down(proc)` makes a process go down as a crash would.
 */
import { deserialize, serialize } from 'node:v8';
import { KERN_NODE_DOWN } from 'norma-rt';
import type { ClusterLink, ProcessIndex, ServiceHandlers } from '../../src/cluster/link.js';
import type { ClusterService } from '../../src/cluster/wire.js';

type Frame =
  | { kind: 'post'; service: ClusterService; payload: Buffer }
  | { kind: 'request'; id: number; service: ClusterService; payload: Buffer }
  | { kind: 'reply'; id: number; payload: Buffer };

class MemoryLink implements ClusterLink {
  readonly #services = new Map<ClusterService, ServiceHandlers>();
  readonly #downHandlers: ((proc: ProcessIndex) => void)[] = [];
  readonly #waiting = new Map<number, { to: ProcessIndex; resolve: (value: unknown) => void }>();
  #nextId = 1;

  constructor(readonly self: ProcessIndex, readonly network: MemoryNetwork) {}

  get processes(): number { return this.network.links.length; }

  post(to: ProcessIndex, service: ClusterService, payload: unknown): void {
    if (this.isDown(to) || this.isDown(this.self)) return;
    this.network.deliver(this.self, to, { kind: 'post', service, payload: serialize(payload) });
  }

  request(to: ProcessIndex, service: ClusterService, payload: unknown): Promise<unknown> {
    if (this.isDown(to) || this.isDown(this.self)) return Promise.resolve({ kr: KERN_NODE_DOWN });
    const id = this.#nextId++;
    const frame: Frame = { kind: 'request', id, service, payload: serialize(payload) };
    return new Promise((resolve) => {
      this.#waiting.set(id, { to, resolve });
      this.network.deliver(this.self, to, frame);
    });
  }

  serve(service: ClusterService, handlers: ServiceHandlers): void {
    if (this.#services.has(service)) throw new Error(`service ${service} served twice`);
    this.#services.set(service, handlers);
  }

  onPeerDown(handler: (proc: ProcessIndex) => void): void { this.#downHandlers.push(handler); }

  isDown(proc: ProcessIndex): boolean { return this.network.down.has(proc); }

  async receive(from: ProcessIndex, frame: Frame): Promise<void> {
    if (frame.kind === 'reply') {
      const waiting = this.#waiting.get(frame.id);
      this.#waiting.delete(frame.id);
      waiting?.resolve(deserialize(frame.payload));
      return;
    }
    const handlers = this.#services.get(frame.service);
    if (frame.kind === 'post') {
      handlers?.message?.(from, deserialize(frame.payload));
      return;
    }
    const answer = handlers?.request === undefined ? { kr: 4 /* KERN_INVALID_ARGUMENT */ } :
      await handlers.request(from, deserialize(frame.payload));
    if (!this.isDown(from) && !this.isDown(this.self)) {
      this.network.deliver(this.self, from, { kind: 'reply', id: frame.id, payload: serialize(answer) });
    }
  }

  peerDown(proc: ProcessIndex): void {
    for (const [id, waiting] of this.#waiting) {
      if (waiting.to !== proc) continue;
      this.#waiting.delete(id);
      waiting.resolve({ kr: KERN_NODE_DOWN });
    }
    for (const handler of this.#downHandlers) handler(proc);
  }
}

/** `processes` links, each able to reach every other, in order per pair. */
export class MemoryNetwork {
  readonly links: MemoryLink[];
  readonly down = new Set<ProcessIndex>();
  /** Per (from, to) pair, the tail of the delivery chain, so frames arrive in order. */
  readonly #tails = new Map<string, Promise<void>>();

  constructor(processes: number) {
    this.links = Array.from({ length: processes }, (_, index) => new MemoryLink(index, this));
  }

  link(proc: ProcessIndex): ClusterLink { return this.links[proc]!; }

  deliver(from: ProcessIndex, to: ProcessIndex, frame: Frame): void {
    const key = `${from}>${to}`;
    const previous = this.#tails.get(key) ?? Promise.resolve();
    // Requests are handled concurrently (as over NATS), but each starts in order.
    const next = previous.then(() => new Promise<void>((resolve) => setImmediate(() => {
      if (!this.down.has(to) && !this.down.has(from)) void this.links[to]!.receive(from, frame);
      resolve();
    })));
    this.#tails.set(key, next);
  }

  /** Process `proc` goes down: every other process is told, as a crash would. */
  crash(proc: ProcessIndex): void {
    if (this.down.has(proc)) return;
    this.down.add(proc);
    for (const link of this.links) if (link.self !== proc) link.peerDown(proc);
  }
}
