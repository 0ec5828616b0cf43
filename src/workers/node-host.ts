/**
 * The host side of the nodes: starts each worker, performs the startup handshake, and carries
 * control-plane calls. A node that exits or crashes fails every call in flight that depends on
 * it, and every later one, with KernError(KERN_NODE_DOWN): no promise waits on a dead node.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { KERN_NODE_DOWN } from '../shared/constants.js';
import { KernError } from '../shared/errors.js';
import { PendingCalls } from '../shared/pending-calls.js';
import { createDoorbell } from './doorbell.js';
import { createRing } from './ring.js';
import { NodeActivity, type NodeActivityReport, type NodeActivityState } from '../shared/node-activity.js';
import type { HostToNode, NodeApi, NodeStartup, NodeToHost, Reply } from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';

const NODE_MAIN = new URL('./node-main.js', import.meta.url);

/** Bytes per ring: 256 KiB for a few nodes, less as pairs multiply (about 64 MiB in all at most). */
function ringCapacity(nodes: number): number {
  const pairs = Math.max(1, nodes * (nodes - 1));
  const share = Math.max(64 * 1024, Math.min(256 * 1024, (64 * 1024 * 1024) / pairs));
  return 2 ** Math.floor(Math.log2(share));
}

type NodeState = 'starting' | 'running' | 'stopping' | 'down';

interface PendingCall {
  readonly resolve: (result: never) => void;
  readonly reject: (error: Error) => void;
  /** The node the call was posted to; it stays referenced until the call settles. */
  readonly host: NodeHost;
  /** Another node whose death also fails the call (the child's node of a cross-node fork). */
  readonly alsoOn: NodeId | undefined;
  /** Date.now() when it was posted, for the busy-node report. */
  readonly posted: number;
}

/** How long a call may wait on a node held by task code before a NORMA_NODE_BUSY warning. */
export const DEFAULT_BUSY_WARNING_MS = 5000;

/**
 * Calls in flight across all nodes. A call is answered by the node it was posted to, or, for a
 * cross-node fork, by the child's node (NodeAdopt), so ids are unique kernel-wide. A settled
 * call lets its node's worker be unreferenced again.
 */
class CallTable extends PendingCalls<PendingCall> {
  override settle(id: number): PendingCall | undefined {
    const call = super.settle(id);
    call?.host.released();
    return call;
  }

  /** When the oldest call still waiting on `node` was posted. */
  oldestOn(node: NodeId): number | undefined { return this.oldest((call) => call.host.node === node)?.posted; }

  /** Fails every call that depends on `node`. */
  failNode(node: NodeId, failure: KernError): void {
    for (const call of this.settleWhere((pending) => pending.host.node === node || pending.alsoOn === node)) call.reject(failure);
  }
}

export class NodeHost {
  readonly node: NodeId;
  readonly #worker: Worker;
  readonly #calls: CallTable;
  readonly #ready: Promise<void>;
  /** Fails startup when the node dies before NodeReady; a no-op once it is running. */
  #rejectStartup: (error: KernError) => void = () => {};
  #failure: KernError | undefined;
  #state: NodeState = 'starting';
  #inFlight = 0;
  #stopped: Promise<void> | undefined;
  /** What the node runs, written by the node (task-code.ts), read here while calls wait. */
  readonly #activity = new NodeActivity();
  #busyAfter = DEFAULT_BUSY_WARNING_MS;
  /** At most one per node, and only while calls are in flight. */
  #busyTimer: ReturnType<typeof setTimeout> | undefined;
  /** The stretch of task code already warned about: one warning each. */
  #warned: NodeActivityState | undefined;

  readonly #peers: NodeHost[];

  private constructor(startup: Omit<NodeStartup, 'op'>, calls: CallTable, peers: NodeHost[], nodeBase: number) {
    this.node = startup.node;
    this.#calls = calls;
    this.#peers = peers;
    this.#worker = new Worker(NODE_MAIN, {
      name: `norma-node-${nodeBase + startup.node}`, workerData: { activity: this.#activity.sab, nodeBase },
    });
    let ready!: () => void;
    this.#ready = new Promise<void>((resolve, reject) => {
      ready = resolve;
      this.#rejectStartup = reject;
    });
    this.#worker.on('message', (message: NodeToHost) => {
      switch (message.op) {
        case 'ready':
          this.#state = 'running';
          if (this.#inFlight === 0) this.#worker.unref();
          ready();
          return;
        case 'return':
          this.#calls.settle(message.id)?.resolve(message.result as never);
          return;
        case 'fault':
          this.#calls.settle(message.id)?.reject(Object.assign(new Error(message.error.message), message.error));
          return;
      }
    });
    this.#worker.on('error', (error) => this.#goDown('crashed', error));
    this.#worker.on('exit', (code) =>
      this.#goDown(this.#state === 'stopping' ? 'was shut down' : `exited with code ${code}`));
    const transfer = startup.peers.filter((peer): peer is MessagePort => peer !== null);
    this.#worker.postMessage({ op: 'startup', ...startup } satisfies HostToNode, transfer);
  }

  /**
   * Starts `nodes` nodes, each with a direct channel to every other, and resolves once all
   * answered NodeReady; if one fails to start, stops the rest and rejects with its error.
   */
  static async startAll(nodes: number,
    startup: Omit<NodeStartup, 'op' | 'node' | 'peers' | 'nodes' | 'rings' | 'doorbell'>,
    /** In a cluster member: the global index of its first node, which task code sees (task-code.ts). */
    nodeBase = 0): Promise<NodeHost[]> {
    const capacity = ringCapacity(nodes);
    const rings = Array.from({ length: nodes * nodes }, (_, index) =>
      Math.floor(index / nodes) === index % nodes ? null : createRing(capacity));
    const doorbell = createDoorbell(nodes);
    const peers: (MessagePort | null)[][] = Array.from({ length: nodes }, () => new Array(nodes).fill(null));
    for (let a = 0; a < nodes; a++) {
      for (let b = a + 1; b < nodes; b++) {
        const channel = new MessageChannel();
        peers[a]![b] = channel.port1;
        peers[b]![a] = channel.port2;
      }
    }
    const calls = new CallTable();
    const hosts: NodeHost[] = [];
    peers.forEach((nodePeers, node) =>
      hosts.push(new NodeHost({ ...startup, node: node as NodeId, nodes, peers: nodePeers, rings, doorbell }, calls, hosts, nodeBase)));
    const started = await Promise.allSettled(hosts.map((host) => host.#ready));
    const failure = started.find((result) => result.status === 'rejected');
    if (failure !== undefined) {
      await Promise.all(hosts.map((host) => host.stop()));
      throw new KernError(KERN_NODE_DOWN, 'a node failed to start', { cause: failure.reason });
    }
    return hosts;
  }

  get isDown(): boolean { return this.#state === 'down'; }

  /** A call posted to this node settled. */
  released(): void {
    // The worker is referenced only while calls are in flight, so an idle kernel never keeps
    // the process alive.
    if (--this.#inFlight === 0 && this.#state === 'running') this.#worker.unref();
  }

  #goDown(reason: string, cause?: unknown): void {
    if (this.#state === 'down') return;
    this.#state = 'down';
    this.#failure = new KernError(KERN_NODE_DOWN, `node ${this.node} ${reason}`, { cause });
    this.#rejectStartup(this.#failure);
    this.#calls.failNode(this.node, this.#failure);
    for (const peer of this.#peers) {
      if (peer !== this && peer.#state === 'running') peer.#worker.postMessage({ op: 'node-down', node: this.node } satisfies HostToNode);
    }
  }

  /**
   * Calls a NodeApi routine. Resolves to its `{ kr, ... }` reply; rejects with
   * KernError(KERN_NODE_DOWN) when this node (or `alsoOn`) is down or goes down before the
   * answer, and with the DataCloneError when an argument cannot cross to a thread.
   */
  call<K extends keyof NodeApi>(method: K, args: Parameters<NodeApi[K]>, alsoOn?: NodeHost): Promise<Reply<K>> {
    const failure = this.#failure ?? (alsoOn === undefined ? undefined : alsoOn.#failure);
    if (failure !== undefined) return Promise.reject(failure);
    return new Promise<Reply<K>>((resolve, reject) => {
      const id = this.#calls.add({
        resolve: resolve as (result: never) => void, reject, host: this, alsoOn: alsoOn?.node, posted: Date.now(),
      });
      if (this.#inFlight++ === 0) this.#worker.ref();
      if (this.#busyTimer === undefined && this.#busyAfter !== Infinity) this.#watchBusy(this.#busyAfter);
      try {
        this.#worker.postMessage({ op: 'call', id, method, args } satisfies HostToNode);
      } catch (error) {
        this.#calls.settle(id)?.reject(error as Error);
      }
    });
  }

  /**
   * Sets how long a call may wait on this node while task code holds it before a process
   * warning (code NORMA_NODE_BUSY) names the node, the task and how long; Infinity for never.
   */
  warnWhenBusy(ms: number): void {
    this.#busyAfter = ms;
  }

  /** What the node runs now, read from its activity word (it need not answer). */
  activity(): NodeActivityReport {
    const running = this.#activity.read();
    const pending = this.#inFlight;
    return running === undefined ? { node: this.node, pending } : { node: this.node, ...running, pending };
  }

  #watchBusy(delay: number): void {
    this.#busyTimer = setTimeout(() => this.#checkBusy(), delay);
    this.#busyTimer.unref();
  }

  /** Runs while calls wait on this node: warns once per stretch of task code that holds it too long. */
  #checkBusy(): void {
    this.#busyTimer = undefined;
    if (this.#inFlight === 0 || this.#state !== 'running' || this.#busyAfter === Infinity) return;
    const after = this.#busyAfter;
    const now = Date.now();
    const running = this.#activity.read();
    const waited = now - (this.#calls.oldestOn(this.node) ?? now);
    const warned = running !== undefined && this.#warned?.task === running.task && this.#warned.since === running.since &&
      this.#warned.thread === running.thread;
    if (running !== undefined && !warned && now - running.since >= after && waited >= after) {
      this.#warned = running;
      const whose = running.thread === undefined ? `task ${running.task}` : `thread ${running.thread} of task ${running.task}`;
      process.emitWarning(`node ${this.node} has run code of ${whose} for ${now - running.since} ms ` +
        `without returning to its event loop; ${this.#inFlight} call(s) wait on it, the oldest for ${waited} ms`,
      { code: 'NORMA_NODE_BUSY', detail: 'Task code that loops synchronously holds its node: every call to it waits.' });
    }
    // Look again when both clocks could have passed the threshold, or a period later.
    const busyFor = running === undefined || warned || this.#warned === running ? 0 : now - running.since;
    this.#watchBusy(Math.max(1, after - Math.min(busyFor, waited)));
  }

  /** Stops the node; calls still in flight fail with KERN_NODE_DOWN. Every call awaits the one stop. */
  stop(): Promise<void> {
    if (this.#stopped === undefined) {
      if (this.#state === 'down') return Promise.resolve();
      this.#state = 'stopping';
      this.#stopped = this.#worker.terminate().then(() => {});
    }
    return this.#stopped;
  }

  /**
   * Test hook: kills the worker abruptly, as a crash would. Resolves once the host has failed
   * the node's calls and told the other nodes (they then sweep up after it: NodeKernel.nodeDown).
   */
  async crash(): Promise<void> {
    if (this.#state === 'down') return;
    await this.#worker.terminate();
  }
}
