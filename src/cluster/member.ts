/**
 * A process that joins clusters (`norma node`): waits on the NATS server for a kernel that
 * recruits it, boots its share of the nodes, serves until that kernel shuts down or dies, and
 * then waits for the next one (or exits, with `once`).
 */
import { ClusterNode } from './cluster.js';
import { NodeLayout } from './layout.js';
import type { LocalKernel } from './link.js';
import { NatsTransport, type ClusterConnectOptions } from './transport.js';
import type { Assignment } from './wire.js';

/** What a member boots for each cluster: its local kernel with `nodes` nodes. */
export type BootLocal = (nodes: number, pageSize: number, nodeBase: number) => Promise<LocalKernel & { shutdown(): Promise<void> }>;

export interface MemberOptions {
  /** The id this process says hello with (process 0 waits for the ids it spawned). */
  readonly processId?: string;
  /** Serve one cluster, then return. */
  readonly once?: boolean;
  /** Stops waiting, or leaves the cluster being served. */
  readonly signal?: AbortSignal;
  /** A line of progress (joined, serving, left). */
  readonly log?: (line: string) => void;
}

/** Serves clusters until `once` is done or `signal` fires. */
export async function serveClusters(connect: ClusterConnectOptions, boot: BootLocal, options: MemberOptions = {}): Promise<void> {
  const log = options.log ?? (() => {});
  do {
    let joined: Awaited<ReturnType<typeof NatsTransport.join>>;
    try {
      joined = await NatsTransport.join(connect, { processId: options.processId, signal: options.signal });
    } catch (error) {
      if (options.signal?.aborted === true) return;
      throw error;
    }
    const { link } = joined;
    const { shares, pageSize } = joined.assignment as Assignment;
    const layout = new NodeLayout(shares);
    const first = layout.globalOf(link.self, 0);
    log(`joined as cluster process ${link.self}: nodes ${first}..${first + shares[link.self]! - 1} of ${layout.nodes}`);
    let end!: () => void;
    const ended = new Promise<void>((resolve) => { end = resolve; });
    const onAbort = (): void => end();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let kernel: Awaited<ReturnType<BootLocal>> | undefined;
    try {
      const node = await ClusterNode.start(async () => (kernel = await boot(shares[link.self]!, pageSize, first)), link, layout, () => end());
      await ended;
      await node.stop();
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      await kernel?.shutdown();
      await link.close();
    }
    log(`left cluster process ${link.self}`);
  } while (options.once !== true && options.signal?.aborted !== true);
}
