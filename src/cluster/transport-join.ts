/**
 * How the processes of a cluster find each other over NATS. The booting process (the host) picks
 * a fresh cluster id and listens on `norma.<name>.join`; a joining process publishes a hello there
 * every 250 ms, naming a private answer subject, until a host assigns it an index; the host sends
 * each of the first `members` hellos (or those of the processes it spawned) its index, the cluster
 * table and its assignment, again every 250 ms until the process is heard on the host's inbox.
 * Hellos and assignments are authenticated as every frame is (transport-frame.ts).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { deserialize, serialize } from 'node:v8';
import { connect, type NatsConnection } from 'nats';
import { KernReturn } from '../shared/constants.js';
import { KernError } from '../shared/errors.js';
import {
  decodeFrame, encodeFrame, FrameKind, NO_INDEX, natsConnectOptions, resolveOptions, subjects,
  type ClusterConnectOptions, type ClusterTable, type ResolvedOptions,
} from './transport-frame.js';

const HELLO_EVERY_MS = 250;
const DEFAULT_HOST_TIMEOUT_MS = 30_000;

export interface HostSpec {
  /** How many processes must join (they get indexes 1..members, in the order they said hello). */
  members: number;
  /** Only these processes may join (e.g. the ones the host spawned, told their id). */
  processIds?: readonly string[];
  /** How long to wait for every member (ms, default 30 s). */
  timeoutMs?: number;
  /** What each member is told with its index (structured-clone data). */
  assignment?: (index: number) => unknown;
  /** The host's own id in the cluster table. */
  processId?: string;
}

export interface JoinSpec {
  /** This process's id, as the host may expect it (default: host:pid:random). */
  processId?: string;
  /** Stops waiting for a host: join() then rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What host() and join() need of the link they make. */
export interface Joinable {
  heardFrom(proc: number): boolean;
  heartbeat(): void;
  isDown(proc: number): boolean;
  crashForTest(): Promise<void>;
}

export type MakeLink<T> = (nc: NatsConnection, options: ResolvedOptions, table: ClusterTable, self: number,
  rejected: number) => T;

interface Hello { readonly processId: string; readonly nonce: string }
interface Offer { readonly nonce: string; readonly index: number; readonly table: ClusterTable; readonly assignment: unknown }

/** The deserialized payload of a genuine frame of `kind` on `subject`, or undefined. */
function readJoinFrame(key: Buffer, subject: string, data: Uint8Array, kind: FrameKind): Record<string, unknown> | undefined {
  const frame = decodeFrame(key, subject, data);
  if (frame === undefined || frame.kind !== kind) return undefined;
  try {
    const value: unknown = deserialize(frame.payload);
    return typeof value === 'object' && value !== null ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}

function publishJoinFrame(nc: NatsConnection, key: Buffer, subject: string, kind: FrameKind, from: number,
  stamp: number, value: unknown): void {
  const bytes = encodeFrame(key, subject, { kind, flags: 0, from, stamp, seq: 0, ack: 0, payload: serialize(value) });
  try {
    nc.publish(subject, bytes);
  } catch {
    // Closed under us: the caller's wait ends on its own (timeout, abort, closed connection).
  }
}

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref());

/** Waits for `spec.members` genuine hellos; rejects naming how many came by the deadline. */
function collectHellos(nc: NatsConnection, options: ResolvedOptions, spec: HostSpec, timeoutMs: number,
  rejected: { count: number }): Promise<Hello[]> {
  const subject = subjects.join(options.name);
  const wanted = spec.processIds === undefined ? undefined : new Set(spec.processIds);
  const joined: Hello[] = [];
  return new Promise((resolve, reject) => {
    const finish = (error?: Error) => {
      clearTimeout(timer);
      subscription.unsubscribe();
      if (error === undefined) resolve(joined);
      else reject(error);
    };
    const subscription = nc.subscribe(subject, {
      callback: (error, msg) => {
        if (error !== null || joined.length === spec.members) return;
        const hello = readJoinFrame(options.key, subject, msg.data, FrameKind.hello);
        const { processId, nonce } = hello ?? {};
        if (typeof processId !== 'string' || typeof nonce !== 'string' || !/^[0-9a-f]{24}$/.test(nonce)) {
          rejected.count++;
          return;
        }
        if (wanted !== undefined && !wanted.has(processId)) return; // another host's process
        if (joined.some((j) => j.nonce === nonce || j.processId === processId)) return; // said again
        joined.push({ processId, nonce });
        if (joined.length === spec.members) finish();
      },
    });
    const timer = setTimeout(() => {
      const missing = wanted === undefined ? '' :
        `; missing: ${[...wanted].filter((id) => !joined.some((j) => j.processId === id)).join(', ')}`;
      finish(new KernError(KernReturn.KERN_NODE_DOWN,
        `cluster '${options.name}': ${joined.length} of ${spec.members} processes joined within ${timeoutMs} ms${missing}`));
    }, timeoutMs);
  });
}

/** host(): connects, takes `spec.members` joiners, and resolves once each took its index. */
export async function hostCluster<T extends Joinable>(options: ClusterConnectOptions, spec: HostSpec,
  make: MakeLink<T>): Promise<T> {
  const resolved = resolveOptions(options);
  if (!Number.isInteger(spec.members) || spec.members < 0) throw new RangeError(`members must be a count, not ${spec.members}`);
  const timeoutMs = spec.timeoutMs ?? DEFAULT_HOST_TIMEOUT_MS;
  const started = performance.now();
  const nc = await connect(natsConnectOptions(options, 'host'));
  const rejected = { count: 0 };
  let joiners: Hello[];
  try {
    joiners = spec.members === 0 ? [] : await collectHellos(nc, resolved, spec, timeoutMs, rejected);
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw error;
  }
  const table: ClusterTable = {
    name: resolved.name,
    clusterId: randomBytes(9).toString('hex'),
    processes: spec.members + 1,
    members: [{ index: 0, processId: spec.processId ?? `${hostname()}:${process.pid}` },
      ...joiners.map((j, i) => ({ index: i + 1, processId: j.processId }))],
  };
  const link = make(nc, resolved, table, 0, rejected.count);
  try {
    const offers = joiners.map((j, i) => ({ nonce: j.nonce, index: i + 1, table, assignment: spec.assignment?.(i + 1) }));
    await nc.flush(); // our inbox is subscribed before anyone learns its name
    let stamp = 0;
    let lastOffer = -Infinity;
    for (;;) {
      const waiting = offers.filter((offer) => !link.heardFrom(offer.index));
      if (waiting.length === 0) return link;
      const down = waiting.find((offer) => link.isDown(offer.index));
      if (down !== undefined) throw new Error(`process ${down.index} (${table.members[down.index]!.processId}) did not take its assignment`);
      if (performance.now() - started > timeoutMs) {
        throw new KernError(KernReturn.KERN_NODE_DOWN, `cluster '${resolved.name}': ${offers.length - waiting.length} of ` +
          `${offers.length} processes took their assignment within ${timeoutMs} ms`);
      }
      if (performance.now() - lastOffer >= HELLO_EVERY_MS) {
        lastOffer = performance.now();
        for (const offer of waiting) {
          publishJoinFrame(nc, resolved.key, subjects.joiner(resolved.name, offer.nonce), FrameKind.assign, 0, ++stamp, offer);
        }
      }
      await tick(10);
    }
  } catch (error) {
    await link.crashForTest();
    throw error;
  }
}

/** join(): connects and says hello until a host assigns this process an index (or `signal`). */
export async function joinCluster<T extends Joinable>(options: ClusterConnectOptions, spec: JoinSpec,
  make: MakeLink<T>): Promise<{ link: T; assignment: unknown }> {
  const resolved = resolveOptions(options);
  spec.signal?.throwIfAborted();
  const nc = await connect(natsConnectOptions(options, 'node'));
  const nonce = randomBytes(12).toString('hex');
  const processId = spec.processId ?? `${hostname()}:${process.pid}:${nonce.slice(0, 8)}`;
  const answers = subjects.joiner(resolved.name, nonce);
  const joinSubject = subjects.join(resolved.name);
  let rejected = 0;
  try {
    const offer = await new Promise<Offer>((resolve, reject) => {
      let stamp = 0;
      let done = false;
      const finish = (error: unknown, offer?: Offer) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        subscription.unsubscribe();
        spec.signal?.removeEventListener('abort', onAbort);
        if (offer !== undefined) resolve(offer);
        else reject(error);
      };
      const onAbort = () => finish(spec.signal?.reason ?? new Error('join aborted'));
      const subscription = nc.subscribe(answers, {
        callback: (error, msg) => {
          if (error !== null) return;
          const offer = readJoinFrame(resolved.key, answers, msg.data, FrameKind.assign);
          const table = offer?.['table'] as ClusterTable | undefined;
          const index = offer?.['index'];
          if (offer === undefined || offer['nonce'] !== nonce || typeof index !== 'number' || table === undefined ||
            !Number.isInteger(table.processes) || !Number.isInteger(index) || index < 1 || index >= table.processes ||
            typeof table.clusterId !== 'string' || !/^[0-9a-f]+$/.test(table.clusterId)) {
            rejected++;
            return;
          }
          finish(undefined, offer as unknown as Offer);
        },
      });
      const hello = () => publishJoinFrame(nc, resolved.key, joinSubject, FrameKind.hello, NO_INDEX, ++stamp, { processId, nonce });
      const timer = setInterval(hello, HELLO_EVERY_MS);
      timer.unref();
      spec.signal?.addEventListener('abort', onAbort, { once: true });
      if (spec.signal?.aborted === true) onAbort();
      void nc.flush().then(hello, () => undefined); // our answer subject is subscribed before we ask
      void nc.closed().then(() => finish(new Error('the NATS connection closed while joining')));
    });
    const link = make(nc, resolved, offer.table, offer.index, rejected);
    await nc.flush();
    link.heartbeat(); // tells the host we took our index
    return { link, assignment: offer.assignment };
  } catch (error) {
    await nc.close().catch(() => undefined);
    throw error;
  }
}
