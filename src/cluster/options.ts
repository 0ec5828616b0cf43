/**
 * Kernel.boot's `cluster` option, on its own so the published declarations of the kernel need
 * neither @types/node nor the NATS client's types.
 */

/** Kernel.boot's `cluster` option: where the NATS server is, its credentials, and who joins. */
export interface ClusterOptions {
  /** The NATS server(s): `nats://host:port`. */
  readonly nats: string | readonly string[];
  /** The cluster's name: `norma node --name` must match. Default 'norma'. */
  readonly name?: string;
  /** NATS credentials: user and password, a token, or an nkey seed. One is required. */
  readonly user?: string;
  readonly pass?: string;
  readonly token?: string;
  readonly nkeySeed?: string;
  /** TLS options for the NATS connection (true: the server's certificate must verify). */
  readonly tls?: boolean | Record<string, unknown>;
  /** The key the cluster's frames are signed with. Default: derived from the credentials. */
  readonly secret?: string;
  /** `norma node` processes to start on this machine, each hosting a share of the nodes. Default 0. */
  readonly spawn?: number;
  /** `norma node` processes started elsewhere to wait for. Default 0. */
  readonly join?: number;
  /** How long to wait for them (ms). Default 30,000. */
  readonly timeoutMs?: number;
  /** Heartbeat period and how long a silent process lives on (ms); transport.ts has the defaults. */
  readonly heartbeatMs?: number;
  readonly deadAfterMs?: number;
}

/** What one process of a cluster reports (Kernel.clusterStatistics). */
export interface ClusterProcessStatistics {
  /** Its index: 0 booted the kernel. */
  readonly process: number;
  /** The global indexes of the nodes it hosts. */
  readonly nodes: readonly number[];
  /** True when it is down (the other fields are then absent). */
  readonly down: boolean;
  /** Its NATS link: frames sent and received, rejected (forged, malformed), duplicates, gaps, retransmits, reconnects... */
  readonly transport?: Readonly<Record<string, number>>;
  /** Its gateway: proxies, exports, forwarded and delivered messages, what it dropped and why. */
  readonly gateway?: Readonly<Record<string, unknown>>;
  /** Its tasks with memory homed elsewhere and the holders it keeps for others. */
  readonly remoteTasks?: Readonly<Record<string, number>>;
}
