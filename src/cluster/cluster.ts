/**
 * A kernel over several OS processes: process 0 boots it and recruits the others through a NATS
 * server (transport.ts), each hosting a share of the nodes with its own local kernel
 * (layout.ts). Every process runs a ClusterNode: its gateway (the netmsgserver: ports across
 * processes, gateway.ts), its remote tasks (fork and memory across processes, remote-task.ts),
 * and the 'kernel' service, through which process 0 runs the NodeApi routines of nodes that live
 * elsewhere. Task code reaches only its own process's nodes; the host's calls reach every node.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_NOT_SUPPORTED, KERN_PROTECTION_FAILURE, KERN_SUCCESS,
} from '../shared/constants.js';
import type { ForkMode, NodeApi, RegionInfo, Reply, TaskLedgers } from '../shared/protocol.js';
import type { RightInTransit } from '../shared/message.js';
import type { NodeId, TaskId } from '../shared/types.js';
import { Task } from '../task.js';
import { Gateway } from './gateway.js';
import { NodeLayout } from './layout.js';
import type { ClusterLink, LocalKernel, ProcessIndex } from './link.js';
import { RemoteTasks } from './remote-task.js';
import { NatsTransport, type ClusterConnectOptions } from './transport.js';
import type { Assignment, KernelMessage, KernelRequest, RightOnWire } from './wire.js';
import type { ClusterOptions, ClusterProcessStatistics } from './options.js';

export type { ClusterOptions };

/** What process 0 recruited: its link to the others and where every node runs. */
export interface Recruited {
  readonly link: NatsTransport;
  readonly layout: NodeLayout;
  /** Stops what recruiting started: the link and the processes spawned here. */
  close(): Promise<void>;
}

const CLI_MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

function connectOptions(options: ClusterOptions): ClusterConnectOptions {
  return {
    servers: typeof options.nats === 'string' ? options.nats : [...options.nats],
    name: options.name, user: options.user, pass: options.pass, token: options.token, nkeySeed: options.nkeySeed,
    tls: options.tls, secret: options.secret, heartbeatMs: options.heartbeatMs, deadAfterMs: options.deadAfterMs,
  };
}

/** Checks a `cluster` option; returns how many processes it joins (this one included). */
function clusterProcesses(options: ClusterOptions, nodes: number): number {
  const { spawn: spawned = 0, join = 0, timeoutMs = 30_000 } = options;
  const nats = typeof options.nats === 'string' ? [options.nats] : options.nats;
  if (!Array.isArray(nats) || nats.length === 0 || nats.some((url) => typeof url !== 'string' || !/^(nats|tls):\/\//.test(url))) {
    throw new RangeError('options.cluster.nats must be a nats://host:port URL (or several)');
  }
  for (const [name, value] of [['spawn', spawned], ['join', join]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new RangeError(`options.cluster.${name} must be a non-negative integer`);
  }
  if (!(timeoutMs > 0)) throw new RangeError('options.cluster.timeoutMs must be positive');
  if (options.user === undefined && options.token === undefined && options.nkeySeed === undefined && options.secret === undefined) {
    throw new RangeError('options.cluster needs credentials: user and pass, token, nkeySeed or secret');
  }
  const processes = 1 + spawned + join;
  if (nodes < processes) throw new RangeError(`options.nodes (${nodes}) must be at least the cluster's processes (${processes})`);
  return processes;
}

/** The credentials a spawned `norma node` reads from its environment, never its command line. */
function credentialEnv(options: ClusterOptions): Record<string, string> {
  const env: Record<string, string> = {};
  if (options.user !== undefined) env['NORMA_NATS_USER'] = options.user;
  if (options.pass !== undefined) env['NORMA_NATS_PASS'] = options.pass;
  if (options.token !== undefined) env['NORMA_NATS_TOKEN'] = options.token;
  if (options.nkeySeed !== undefined) env['NORMA_NATS_NKEY_SEED'] = options.nkeySeed;
  if (options.secret !== undefined) env['NORMA_CLUSTER_SECRET'] = options.secret;
  return env;
}

/**
 * Process 0's first step: starts the spawned processes, waits for every member, and tells each
 * its share of the nodes. The caller boots its own share, then starts its ClusterNode.
 */
export async function recruit(options: ClusterOptions, nodes: number, pageSize: number): Promise<Recruited> {
  const processes = clusterProcesses(options, nodes);
  const layout = NodeLayout.even(nodes, processes);
  const children: ChildProcess[] = [];
  const servers = typeof options.nats === 'string' ? options.nats : options.nats.join(',');
  const ids = Array.from({ length: options.spawn ?? 0 }, () => randomUUID());
  for (const id of ids) {
    const child = spawn(process.execPath, [CLI_MAIN, 'node', '--quiet', '--nats', servers, '--name', options.name ?? 'norma', '--id', id, '--once'], {
      env: { ...process.env, ...credentialEnv(options) }, stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.unref();
    children.push(child);
  }
  const close = async (): Promise<void> => {
    await Promise.all(children.map((child) => stopChild(child)));
  };
  // A spawned process that exits before it joins fails the boot at once, not at the timeout.
  let exitedEarly!: (error: Error) => void;
  const early = new Promise<never>((_, reject) => { exitedEarly = reject; });
  early.catch(() => {});
  for (const child of children) {
    child.once('exit', (code, signal) => exitedEarly(new RangeError(`a spawned norma node exited (${signal ?? `code ${code}`}) before it joined`)));
  }
  try {
    const link = await Promise.race([early, NatsTransport.host(connectOptions(options), {
      members: processes - 1,
      processIds: (options.join ?? 0) === 0 ? ids : undefined,
      timeoutMs: options.timeoutMs ?? 30_000,
      assignment: () => ({ shares: layout.shares, pageSize } satisfies Assignment),
    })]);
    return { link, layout, close: async () => { await link.close(); await close(); } };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Waits for a spawned process to exit (it does once the cluster shuts down), killing it after 5 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    timer.unref();
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}

/** One process's part of the cluster. */
export class ClusterNode {
  #local!: LocalKernel;
  readonly #link: ClusterLink;
  readonly layout: NodeLayout;
  #gateway!: Gateway;
  #remote!: RemoteTasks;
  /** Settles true once this process's parts run, false when its local kernel failed to boot. */
  readonly #started: Promise<boolean>;
  #start!: (started: boolean) => void;
  #stopped = false;

  private constructor(link: ClusterLink, layout: NodeLayout) {
    this.#link = link;
    this.layout = layout;
    this.#started = new Promise((resolve) => { this.#start = resolve; });
  }

  /**
   * Serves the 'kernel' service at once (process 0's requests wait until this process runs),
   * then boots the local kernel and starts the gateway and remote tasks. `onShutdown` runs when
   * process 0 says the kernel stops, or dies (a member's local kernel then stops too).
   */
  static async start(boot: () => Promise<LocalKernel>, link: ClusterLink, layout: NodeLayout,
    onShutdown: () => void = () => {}): Promise<ClusterNode> {
    const node = new ClusterNode(link, layout);
    link.serve('kernel', {
      request: async (from, payload) => {
        // Taken as the request arrives, before any await: a release from `from` after it waits for its rights.
        const imported = node.#gateway?.holdReleases(from) ?? (() => {});
        try {
          return await node.#started ? await node.#serve(from, payload as KernelRequest, imported) : { kr: KERN_FAILURE };
        } finally {
          imported();
        }
      },
      message: (_from, payload) => { if ((payload as KernelMessage).op === 'shutdown') onShutdown(); },
    });
    if (link.self !== 0) link.onPeerDown((proc) => { if (proc === 0) onShutdown(); });
    try {
      node.#local = await boot();
      node.#gateway = await Gateway.start(node.#local, link);
      node.#remote = new RemoteTasks(node.#local, link, node.#gateway);
    } catch (error) {
      node.#start(false);
      throw error;
    }
    node.#start(true);
    return node;
  }

  /** Process 0: waits until every other process answers (its kernel and cluster parts run). */
  async ready(): Promise<void> {
    const answers = await Promise.all(Array.from({ length: this.layout.processes - 1 }, (_, index) =>
      this.#link.request(index + 1, 'kernel', { op: 'ready' } satisfies KernelRequest) as Promise<{ kr: number }>));
    const down = answers.findIndex((answer) => answer.kr !== KERN_SUCCESS);
    if (down >= 0) throw new RangeError(`cluster process ${down + 1} did not start (kr ${answers[down]!.kr})`);
  }

  /** Whether global node `node` runs in this process. */
  isLocal(node: number): boolean { return this.layout.processOf(node) === this.#link.self; }

  /**
   * A NodeApi routine on global node `node`: here through remote-task routing or the local
   * kernel, elsewhere through that process's 'kernel' service, with rights carried as wire rights.
   */
  async request<K extends keyof NodeApi>(node: NodeId, method: K, args: readonly unknown[]): Promise<Reply<K>> {
    const proc = this.layout.processOf(node);
    const local = this.layout.localOf(node);
    if (proc === this.#link.self) return this.#runLocal(local, method, args) as Promise<Reply<K>>;
    if (method === 'vmView') {
      return { kr: KERN_PROTECTION_FAILURE, why: `node ${node} runs in cluster process ${proc}: a raw view of another process's memory needs a coherent pager, which norma does not have yet` } as unknown as Reply<K>;
    }
    const wired = await this.#rightsOut(args, proc);
    // Only an extracted right comes back in a reply: releases from `proc` wait until it is imported.
    const imported = method === 'portExtractRight' ? this.#gateway.holdReleases(proc) : () => {};
    try {
      const reply = await this.#link.request(proc, 'kernel', { op: 'call', node: local, method, args: wired } satisfies KernelRequest) as Record<string, unknown>;
      return await this.#rightsIn(reply) as Reply<K>;
    } finally {
      imported();
    }
  }

  /** A fork whose parent lives on `parentNode` and whose child is to live on `childNode` (global). */
  async fork(parentNode: NodeId, parent: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId): Promise<{ kr: number; child?: TaskId }> {
    const from = this.layout.processOf(parentNode);
    const to = this.layout.processOf(childNode);
    if (from === to) {
      return await this.#link.request(from, 'kernel', {
        op: 'fork', node: this.layout.localOf(parentNode), parent, mode, inheritMemory, childNode: this.layout.localOf(childNode),
      } satisfies KernelRequest) as { kr: number; child?: TaskId };
    }
    return this.#remote.forkAcross({ proc: from, node: this.layout.localOf(parentNode), task: parent }, mode, inheritMemory,
      { proc: to, node: this.layout.localOf(childNode) });
  }

  /**
   * A task with memory homed in another process is not forked again (its shared regions are
   * placeholders here): KERN_NOT_SUPPORTED, until a coherent pager lets memory follow.
   */
  refuseFork(): { kr: number; why: string } {
    return { kr: KERN_NOT_SUPPORTED, why: 'a task whose memory is homed in another cluster process cannot be forked yet' };
  }

  /** A fork of local task `parent` (with memory homed in another process) onto global node `childNode` of this process. */
  forkHere(parentNode: NodeId, parent: TaskId, mode: ForkMode, inheritMemory: boolean, childNode: NodeId,
    ledgers: TaskLedgers | null): Promise<{ kr: number; child?: TaskId }> {
    return this.#remote.forkHere(this.layout.localOf(parentNode) as NodeId, parent, mode, inheritMemory,
      this.layout.localOf(childNode) as NodeId, ledgers);
  }

  /** Whether local task `task` has memory homed in another process. */
  hasRemoteMemory(task: TaskId): boolean { return this.#remote.hasRemoteMemory(task); }

  /** Test hook: crashes global node `node` wherever it runs. */
  async crash(node: number): Promise<number> {
    const reply = await this.#link.request(this.layout.processOf(node), 'kernel',
      { op: 'crash', node: this.layout.localOf(node) } satisfies KernelRequest) as { kr: number };
    return reply.kr;
  }

  /** Process 0: tells the others the kernel stops, then stops this process's parts. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#link.self === 0) {
      for (let proc = 1; proc < this.layout.processes; proc++) this.#link.post(proc, 'kernel', { op: 'shutdown' } satisfies KernelMessage);
    }
    await this.#gateway?.stop();
  }

  async #serve(from: ProcessIndex, request: KernelRequest, imported: () => void): Promise<unknown> {
    switch (request.op) {
      case 'ready': return { kr: KERN_SUCCESS };
      case 'call': {
        if (!Number.isInteger(request.node) || request.node < 0 || request.node >= this.#local.localNodes) return { kr: KERN_INVALID_ARGUMENT };
        if (request.method === 'vmView') {
          return { kr: KERN_PROTECTION_FAILURE, why: `a raw view of cluster process ${this.#link.self}'s memory cannot cross processes` };
        }
        const args = await this.#rightsIn(request.args);
        imported();
        const reply = await this.#runLocal(request.node, request.method as keyof NodeApi, args as unknown[]) as Record<string, unknown>;
        return this.#rightsOut(reply, from);
      }
      case 'fork': {
        const { node, parent, mode, inheritMemory, childNode } = request;
        if (![node, childNode].every((index) => Number.isInteger(index) && index >= 0 && index < this.#local.localNodes)) {
          return { kr: KERN_INVALID_ARGUMENT };
        }
        if (this.#remote.hasRemoteMemory(parent as TaskId)) {
          return this.#remote.forkHere(node as NodeId, parent as TaskId, mode, inheritMemory, childNode as NodeId);
        }
        const { kr, child } = await this.#local.fork(new Task(this.#local, parent as TaskId, node as NodeId), mode, inheritMemory, childNode, null);
        return child === undefined ? { kr } : { kr, child: child.id };
      }
      case 'crash': {
        if (!Number.isInteger(request.node) || request.node < 0 || request.node >= this.#local.localNodes) return { kr: KERN_INVALID_ARGUMENT };
        await this.#local.crashNode(request.node);
        return { kr: KERN_SUCCESS };
      }
      case 'statistics': return { kr: KERN_SUCCESS, ...this.#figures() };
      default: return { kr: KERN_INVALID_ARGUMENT };
    }
  }

  #figures(): Pick<ClusterProcessStatistics, 'transport' | 'gateway' | 'remoteTasks'> {
    const link = this.#link as Partial<{ statistics(): Record<string, number> }>;
    return {
      transport: link.statistics?.(),
      gateway: this.#gateway.statistics() as unknown as Record<string, unknown>,
      remoteTasks: this.#remote.statistics() as unknown as Record<string, number>,
    };
  }

  /** Every process's figures: its link, gateway and remote tasks (a process that is down says so). */
  async statistics(): Promise<ClusterProcessStatistics[]> {
    return Promise.all(this.layout.shares.map(async (share, proc) => {
      const nodes = Array.from({ length: share }, (_, local) => this.layout.globalOf(proc, local));
      if (proc === this.#link.self) return { process: proc, nodes, down: false, ...this.#figures() };
      const reply = await this.#link.request(proc, 'kernel', { op: 'statistics' } satisfies KernelRequest) as
        { kr: number } & Pick<ClusterProcessStatistics, 'transport' | 'gateway' | 'remoteTasks'>;
      if (reply.kr !== KERN_SUCCESS) return { process: proc, nodes, down: true };
      const { kr: _kr, ...figures } = reply;
      return { process: proc, nodes, down: false, ...figures };
    }));
  }

  async #runLocal(node: number, method: keyof NodeApi, args: readonly unknown[]): Promise<unknown> {
    const routed = this.#remote.route(node as NodeId, method, args);
    const request = this.#local.request as (node: NodeId, method: keyof NodeApi, ...rest: unknown[]) => Promise<unknown>;
    const reply = await (routed ?? request.call(this.#local, node as NodeId, method, ...args)) as Record<string, unknown>;
    if (method !== 'vmRegion' && method !== 'vmRegions') return reply;
    const region = reply['region'] as RegionInfo | undefined;
    const regions = reply['regions'] as RegionInfo[] | undefined;
    return {
      ...reply,
      ...(region === undefined ? {} : { region: this.#globalObject(region) }),
      ...(regions === undefined ? {} : { regions: regions.map((each) => this.#globalObject(each)) }),
    };
  }

  /**
   * A region's memory object as one process names it (`home:slot`, its home a node of that
   * process; `p<process>/home:slot` for memory homed in another, remote-memory.ts), named
   * cluster-wide: its home's global node. The same object has the same name in every process.
   */
  #globalObject(region: RegionInfo): RegionInfo {
    const match = /^(?:p(\d+)\/)?(\d+):(\d+)$/.exec(region.object);
    if (match === null) return region;
    const proc = match[1] === undefined ? this.#link.self : Number(match[1]);
    return { ...region, object: `${this.layout.globalOf(proc, Number(match[2]))}:${match[3]}` };
  }

  /**
   * RightInTransit values (top level of an argument list, or an answer's `right`) made wire
   * rights granted to process `to`.
   */
  #rightsOut<T>(value: T, to: ProcessIndex): Promise<T> {
    return eachRight(value, async (item) =>
      isRightInTransit(item) ? { wireRight: await this.#gateway.exportRight(item, to) } satisfies RightOnWire : item);
  }

  /** The other way: wire rights made rights of this process (proxies, or the real right come home). */
  #rightsIn<T>(value: T): Promise<T> {
    return eachRight(value, async (item) => typeof item === 'object' && item !== null && 'wireRight' in item
      ? this.#gateway.importRight((item as RightOnWire).wireRight) : item);
  }
}

/** `value` (an argument list, or an answer with a `right`) with each place a right can be in mapped by `map`. */
async function eachRight<T>(value: T, map: (item: unknown) => Promise<unknown>): Promise<T> {
  if (Array.isArray(value)) return await Promise.all(value.map(map)) as T;
  const record = value as Record<string, unknown>;
  return (record['right'] === undefined ? record : { ...record, right: await map(record['right']) }) as T;
}

function isRightInTransit(value: unknown): value is RightInTransit {
  if (typeof value !== 'object' || value === null) return false;
  const kind = (value as { kind?: unknown }).kind;
  return kind === 'dead' || ((kind === 'send' || kind === 'send-once' || kind === 'receive') &&
    typeof (value as { portId?: unknown }).portId === 'number');
}
