/**
 * The host side of one node: starts its worker, performs the startup handshake, and carries
 * control-plane calls. A node that exits or crashes fails every call in flight, and every later
 * one, with KernError(KERN_NODE_DOWN): no promise waits on a dead node.
 */
import { Worker } from 'node:worker_threads';
import { KERN_NODE_DOWN } from '../shared/constants.js';
import { KernError } from '../shared/errors.js';
import { nodeEndpoint, releaseProxy, wrap, type Remote } from '../shared/comlink.js';
import type { NodeApi, NodeBootMessage, NodeStartup } from '../shared/protocol.js';
import type { NodeId } from '../shared/types.js';

const NODE_MAIN = new URL('./node-main.js', import.meta.url);

type NodeState = 'running' | 'stopping' | 'down';
type Reply<K extends keyof NodeApi> = Awaited<ReturnType<NodeApi[K]>>;

export class NodeHost {
  readonly node: NodeId;
  readonly #worker: Worker;
  readonly #remote: Remote<NodeApi>;
  readonly #down: Promise<never>;
  #failure: KernError | undefined;
  #state: NodeState = 'running';
  #inFlight = 0;

  private constructor(node: NodeId, worker: Worker) {
    this.node = node;
    this.#worker = worker;
    this.#remote = wrap<NodeApi>(nodeEndpoint(worker));
    let fail!: (error: KernError) => void;
    this.#down = new Promise<never>((_, reject) => { fail = reject; });
    // The race in call() observes this rejection; a kernel with nothing in flight must not
    // report it as unhandled.
    this.#down.catch(() => {});
    const goDown = (reason: string, cause?: unknown) => {
      if (this.#state === 'down') return;
      this.#state = 'down';
      this.#failure = new KernError(KERN_NODE_DOWN, `node ${node} ${reason}`, { cause });
      fail(this.#failure);
    };
    worker.on('error', (error) => goDown('crashed', error));
    worker.on('exit', (code) => goDown(this.#state === 'stopping' ? 'was shut down' : `exited with code ${code}`));
  }

  /** Starts a node and resolves once it answered NodeReady; rejects if it dies first. */
  static start(startup: Omit<NodeStartup, 'op'>): Promise<NodeHost> {
    const worker = new Worker(NODE_MAIN, { name: `norma-node-${startup.node}` });
    return new Promise((resolve, reject) => {
      const onMessage = (message: NodeBootMessage) => {
        if (message.op !== 'ready') return;
        cleanup();
        const host = new NodeHost(startup.node, worker);
        worker.unref();
        resolve(host);
      };
      const onError = (error: unknown) => {
        cleanup();
        void worker.terminate();
        reject(new KernError(KERN_NODE_DOWN, `node ${startup.node} failed to start`, { cause: error }));
      };
      const onExit = (code: number) => onError(new Error(`exited with code ${code} during startup`));
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage({ op: 'startup', ...startup } satisfies NodeStartup);
    });
  }

  get isDown(): boolean { return this.#state === 'down'; }

  /**
   * Calls a NodeApi routine. Resolves to its `{ kr, ... }` reply; rejects with
   * KernError(KERN_NODE_DOWN) when the node is down or goes down before answering.
   * The worker is referenced only while calls are in flight, so an idle kernel never keeps
   * the process alive.
   */
  async call<K extends keyof NodeApi>(method: K, ...args: Parameters<NodeApi[K]>): Promise<Reply<K>> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#inFlight++ === 0) this.#worker.ref();
    try {
      const routine = this.#remote[method] as unknown as (...routineArgs: unknown[]) => Promise<Reply<K>>;
      return await Promise.race([routine(...args), this.#down]);
    } finally {
      if (--this.#inFlight === 0 && this.#state !== 'down') this.#worker.unref();
    }
  }

  /** Stops the node; calls still in flight fail with KERN_NODE_DOWN. */
  async stop(): Promise<void> {
    if (this.#state === 'down') return;
    this.#state = 'stopping';
    this.#remote[releaseProxy]();
    await this.#worker.terminate();
  }

  /** Test hook: kills the worker abruptly, as a crash would. */
  async crash(): Promise<void> {
    await this.#worker.terminate();
  }
}
