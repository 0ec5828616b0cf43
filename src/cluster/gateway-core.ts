/**
 * What the gateway's parts (gateway.ts, gateway-proxies.ts, gateway-exports.ts) share: the
 * gateway task's calls, its port set and notify port, the link, the counters, and the checks a
 * frame from another process passes before anything acts on it.
 */
import { randomBytes } from 'node:crypto';
import { MACH_PORT_QLIMIT_MAX } from '../shared/constants.js';
import type { NodeApi, Reply, RestParameters } from '../shared/protocol.js';
import type { NodeId, TaskId } from '../shared/types.js';
import type { ClusterLink, LocalKernel, ProcessIndex } from './link.js';
import type { GatewayFrame, GatewayRequest, WireMessage, WireRight } from './wire.js';

/** One NodeApi routine run as one task (its first argument supplied). */
export type TaskCall = <K extends keyof NodeApi>(method: K, ...args: RestParameters<NodeApi[K]>) => Promise<Reply<K>>;

export function taskCall(kernel: LocalKernel, node: NodeId, task: TaskId): TaskCall {
  return ((method: keyof NodeApi, ...args: unknown[]) =>
    kernel.request(node, method, ...([task, ...args] as never))) as TaskCall;
}

/**
 * A right granted to no process in particular (exportRight without a destination): the first
 * process that uses it (a deliver, a grant, a release naming it) claims it.
 */
export const ANY: ProcessIndex = -1;

export const DEAD: WireRight = Object.freeze({ kind: 'dead' });

/** The id of the gateway's fence messages on a forwarder's port ('fenc'); the body says whose (GatewayContext.fenceOf). */
export const FENCE_ID = 0x66656e63;

/**
 * A receive right on the wire carries its port's queue limit (mach_port_get_attributes'
 * MACH_PORT_LIMITS_INFO), so the new port has it before anyone can ask. Its `export` is a token
 * of the home's gateway, not a name (wire.ts's WireRight, with this one optional field more).
 */
export type ReceiveWire = WireRight & { readonly kind: 'receive'; readonly qlimit?: number };

/** The queue limit a receive wire right carries, if a sane one. */
export function queueLimitOf(wire: WireRight): number | undefined {
  const qlimit = (wire as { qlimit?: unknown }).qlimit;
  return Number.isInteger(qlimit) && (qlimit as number) >= 0 && (qlimit as number) <= MACH_PORT_QLIMIT_MAX ? qlimit as number : undefined;
}

/** MACH_PORT_RECEIVE_STATUS as far as the gateway reads it. */
export interface ReceiveStatus {
  readonly mps_mscount: number;
  readonly mps_srights: boolean;
  readonly mps_nsrequest: boolean;
}

/** The gateway's shared state and the calls its parts make as the gateway task. */
export class GatewayContext {
  forwarded = 0;
  delivered = 0;
  /** Out-of-line regions the sender shared (share: true) that crossed as a copy all the same. */
  sharedOolCopied = 0;
  readonly dropped = new Map<string, number>();
  /** The last failure a chain caught (a bug, or a kernel going down under it), for statistics. */
  lastError: string | undefined;
  stopped = false;
  /**
   * What marks the gateway's own fence messages on a forwarder's port (FENCE_ID, this, then the
   * process and fence number): a task holding a send right to that port cannot guess it.
   */
  readonly #marker = randomBytes(16);

  constructor(
    readonly link: ClusterLink,
    /** Routines as the gateway task. */
    readonly g: TaskCall,
    /** The port set every proxy and the notify port are members of. */
    readonly set: number,
    /** Where dead-name notifications for exports arrive. */
    readonly notify: number,
    /** Messages per proxy forwarded and not yet acknowledged by the home (the credits). */
    readonly window: number,
  ) {}

  get self(): ProcessIndex { return this.link.self; }

  drop(reason: string): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
  }

  post(to: ProcessIndex, frame: GatewayFrame): void {
    if (!this.stopped) this.link.post(to, 'gateway', frame);
  }

  /** Runs `work` so that it never rejects: a failure is counted, and the chain goes on. */
  guard(work: Promise<unknown>): Promise<void> {
    return work.then(() => {}, (error: unknown) => {
      this.drop('internal');
      this.lastError = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    });
  }

  /** The body of a fence message: the marker, then process `proc`'s fence `seq`. */
  fenceBody(proc: ProcessIndex, seq: number): Uint8Array {
    const body = new Uint8Array(this.#marker.length + 8);
    body.set(this.#marker);
    const view = new DataView(body.buffer, this.#marker.length);
    view.setUint32(0, proc, true);
    view.setUint32(4, seq, true);
    return body;
  }

  /** The process and fence number a message on a forwarder carries when it is the gateway's own fence message. */
  fenceOf(msg: { readonly id: number; readonly body: Uint8Array; readonly ports: readonly unknown[]; readonly ool: readonly unknown[] }):
    { readonly proc: ProcessIndex; readonly seq: number } | undefined {
    const size = this.#marker.length;
    if (msg.id !== FENCE_ID || msg.body.byteLength !== size + 8 || msg.ports.length !== 0 || msg.ool.length !== 0) return undefined;
    for (let index = 0; index < size; index++) if (msg.body[index] !== this.#marker[index]) return undefined;
    const view = new DataView(msg.body.buffer, msg.body.byteOffset + size, 8);
    return { proc: view.getUint32(0, true), seq: view.getUint32(4, true) };
  }

  /** A process index this cluster has, other than this one. */
  isPeer(proc: unknown): proc is ProcessIndex {
    return Number.isInteger(proc) && (proc as number) >= 0 && (proc as number) < this.link.processes && proc !== this.self;
  }
}

/** The little-endian 32-bit word a notification body carries (a name, or a make-send count). */
export function bodyWord(body: Uint8Array): number | undefined {
  return body.byteLength < 4 ? undefined : new DataView(body.buffer, body.byteOffset, 4).getUint32(0, true);
}

const isName = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0 && (value as number) < 0xffffffff;
const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) > 0 && (value as number) < 2 ** 31;
const RIGHT_KINDS: ReadonlySet<unknown> = new Set(['send', 'send-once', 'receive']);
/** More than a message could carry: a frame with more is refused, not walked. */
const MAX_RIGHTS = 4096;

export function isWireRight(value: unknown, processes: number): value is WireRight {
  if (typeof value !== 'object' || value === null) return false;
  const wire = value as { kind?: unknown; home?: unknown; export?: unknown };
  if (wire.kind === 'dead') return true;
  return RIGHT_KINDS.has(wire.kind) && Number.isInteger(wire.home) && (wire.home as number) >= 0 &&
    (wire.home as number) < processes && isName(wire.export);
}

function isWireMessage(value: unknown, processes: number): value is WireMessage {
  if (typeof value !== 'object' || value === null) return false;
  const msg = value as Partial<Record<keyof WireMessage, unknown>>;
  return Number.isInteger(msg.id) && (msg.id as number) >= -(2 ** 31) && (msg.id as number) < 2 ** 31 &&
    msg.body instanceof Uint8Array &&
    (msg.reply === null || isWireRight(msg.reply, processes)) &&
    Array.isArray(msg.ports) && msg.ports.length <= MAX_RIGHTS && msg.ports.every((port) => isWireRight(port, processes)) &&
    Array.isArray(msg.ool) && msg.ool.length <= MAX_RIGHTS && msg.ool.every((bytes) => bytes instanceof Uint8Array);
}

/** `payload` as a gateway frame, or null when it is not one (refused and counted by the caller). */
export function parseFrame(payload: unknown, processes: number): GatewayFrame | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const frame = payload as Record<string, unknown>;
  if (!isName(frame['export'])) return null;
  switch (frame['op']) {
    case 'deliver':
      return typeof frame['once'] === 'boolean' && isWireMessage(frame['msg'], processes) ? frame as GatewayFrame : null;
    case 'ack':
      return isCount(frame['count']) ? frame as GatewayFrame : null;
    case 'release':
      return isCount(frame['count']) && RIGHT_KINDS.has(frame['kind']) ? frame as GatewayFrame : null;
    case 'dead':
      return frame as GatewayFrame;
    case 'migrated':
      return isName(frame['to']) ? frame as GatewayFrame : null;
    case 'moved':
      return isName(frame['to']) && Number.isInteger(frame['home']) && (frame['home'] as number) >= 0 &&
        (frame['home'] as number) < processes ? frame as GatewayFrame : null;
    case 'fence':
      return isCount(frame['seq']) && Number.isInteger(frame['for']) && (frame['for'] as number) >= 0 &&
        (frame['for'] as number) < processes ? frame as GatewayFrame : null;
    case 'fenced':
      return isCount(frame['seq']) ? frame as GatewayFrame : null;
    default:
      return null;
  }
}

export function parseRequest(payload: unknown): GatewayRequest | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const request = payload as Record<string, unknown>;
  const to = request['to'];
  return request['op'] === 'grant' && isName(request['export']) && Number.isInteger(to) && (to as number) >= ANY
    ? request as GatewayRequest : null;
}
