/**
 * The NATS transport's envelope, its authentication, its options and its statistics. Every frame is
 *
 *   0 version u8 | 1 kind u8 | 2 flags u8 | 3 reserved | 4 from u32 | 8 stamp u48 | 14 seq u48 |
 *   20 ack u48 | 26 MAC (HMAC-SHA256, 32 bytes) | 58 payload
 *
 * and the MAC covers the subject it was published on, the header and the payload: the subject
 * names the cluster's name, its boot-time id and the destination process, so a genuine frame
 * cannot be replayed to another process or cluster, and a client without the credentials cannot
 * forge one. `stamp` rises with every frame a process sends (retransmissions included), so a frame
 * replayed on the same subject is older than what its receiver already took and is dropped;
 * `seq` numbers the data frames of one (sender, receiver) pair for go-back-N, `ack` is the
 * sender's cumulative acknowledgement of the reverse direction.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { nkeyAuthenticator, type ConnectionOptions } from 'nats';

export const FRAME_VERSION = 1;
export const HEADER_BYTES = 26;
export const MAC_BYTES = 32;
export const PAYLOAD_OFFSET = HEADER_BYTES + MAC_BYTES;
/** NATS refuses payloads over max_payload (1 MiB by default): data is cut into chunks of this. */
export const CHUNK_BYTES = 512 * 1024;
/** `from` of a frame sent before its sender has an index (a hello). */
export const NO_INDEX = 0xffff_ffff;

export const FrameKind = {
  /** A chunk of a serialized message; flags say whether it starts or ends one. */
  data: 1,
  /** Acknowledgement and heartbeat. */
  ack: 2,
  /** "Resend from `seq`": a gap was seen, or the sender reconnected and lost track. */
  nack: 3,
  /** The sender closes: it is down at once. */
  goodbye: 4,
  /** A process that wants to join (on the join subject). */
  hello: 5,
  /** The host's answer to a hello: index, cluster table, assignment (on the joiner's subject). */
  assign: 6,
} as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

export const FLAG_FIRST = 1;
export const FLAG_LAST = 2;

export interface Frame {
  readonly kind: FrameKind;
  readonly flags: number;
  readonly from: number;
  readonly stamp: number;
  readonly seq: number;
  readonly ack: number;
  readonly payload: Uint8Array;
}

export interface ClusterConnectOptions {
  /** The NATS server(s), e.g. 'nats://10.0.0.1:4222'. */
  servers: string | string[];
  /** The cluster's name (subject token: letters, digits, '-', '_'); default 'norma'. */
  name?: string;
  user?: string;
  pass?: string;
  token?: string;
  /** An nkey seed ('SU...'): authenticates to NATS with the nkey. */
  nkeySeed?: string;
  /** TLS to the NATS server: true for the defaults, or nats' TlsOptions. */
  tls?: boolean | object;
  /** The key frames are authenticated with; default: the NATS password, token or nkey seed. */
  secret?: string;
  /** How often a process tells each peer it lives (ms, default 200). */
  heartbeatMs?: number;
  /** A peer silent this long while our connection is up is down (ms, default 2000). */
  deadAfterMs?: number;
}

/** Who is in the cluster: sent by the host with each assignment. */
export interface ClusterTable {
  readonly name: string;
  readonly clusterId: string;
  readonly processes: number;
  readonly members: readonly { readonly index: number; readonly processId: string }[];
}

export interface TransportStatistics {
  /** Frames published and received (every kind, retransmissions included). */
  sent: number;
  received: number;
  /** Messages handed to a service (or a reply to its request). */
  delivered: number;
  /** Frames dropped as malformed or forged (bad MAC, wrong subject, unknown sender). */
  rejected: number;
  /** Frames dropped as already seen: a retransmission overtaken, or a replay. */
  duplicates: number;
  /** Times frames went missing from a peer's stream (each reported, then resent). */
  gaps: number;
  retransmits: number;
  disconnects: number;
  reconnects: number;
  slowConsumers: number;
  /** Async errors the NATS server reported (permissions, slow consumer...). */
  serverErrors: number;
  /** Frames from a peer already down, and posts for a service nobody serves. */
  dropped: number;
  /** Times this process stalled longer than two heartbeats (peers' clocks then restart). */
  stalls: number;
  /** Message handlers that threw (the frame counts as delivered). */
  handlerErrors: number;
  peersDown: number;
  /** Data frames sent and not yet acknowledged / not yet sent for the window, all peers. */
  inFlight: number;
  queued: number;
  pendingRequests: number;
}

export interface GapReport {
  readonly from: number;
  /** The frame we waited for, and the one that came instead. */
  readonly expected: number;
  readonly received: number;
}

export function zeroStatistics(): TransportStatistics {
  return {
    sent: 0, received: 0, delivered: 0, rejected: 0, duplicates: 0, gaps: 0, retransmits: 0,
    disconnects: 0, reconnects: 0, slowConsumers: 0, serverErrors: 0, dropped: 0, stalls: 0, handlerErrors: 0,
    peersDown: 0, inFlight: 0, queued: 0, pendingRequests: 0,
  };
}

export interface ResolvedOptions {
  readonly servers: string[];
  readonly name: string;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  readonly key: Buffer;
}

const NAME = /^[A-Za-z0-9_-]+$/;

/** Validates `options` and derives the frame key; throws RangeError on what cannot work. */
export function resolveOptions(options: ClusterConnectOptions): ResolvedOptions {
  const servers = typeof options.servers === 'string' ? [options.servers] : [...(options.servers ?? [])];
  if (servers.length === 0) throw new RangeError('a cluster needs at least one NATS server');
  const name = options.name ?? 'norma';
  if (!NAME.test(name)) throw new RangeError(`cluster name '${name}' must be letters, digits, '-' or '_'`);
  const heartbeatMs = options.heartbeatMs ?? 200;
  const deadAfterMs = options.deadAfterMs ?? 2000;
  if (!(heartbeatMs > 0) || !(deadAfterMs > 2 * heartbeatMs)) {
    throw new RangeError(`deadAfterMs (${deadAfterMs}) must exceed twice heartbeatMs (${heartbeatMs})`);
  }
  const secret = [options.secret, options.pass, options.token, options.nkeySeed].find((s) => s !== undefined && s !== '');
  if (secret === undefined) throw new RangeError('a cluster needs credentials');
  const key = Buffer.from(hkdfSync('sha256', secret, 'norma-rt cluster frames', name, 32));
  return { servers, name, heartbeatMs, deadAfterMs, key };
}

/** nats' connect options for `options`: reconnect forever, our own echo off. */
export function natsConnectOptions(options: ClusterConnectOptions, role: string): ConnectionOptions {
  const resolved: ConnectionOptions = {
    servers: options.servers,
    name: `norma-${options.name ?? 'norma'}-${role}`,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 200,
    waitOnFirstConnect: false,
    noEcho: true,
    pingInterval: 5_000,
  };
  if (options.user !== undefined) resolved.user = options.user;
  if (options.pass !== undefined) resolved.pass = options.pass;
  if (options.token !== undefined) resolved.token = options.token;
  if (options.nkeySeed !== undefined) resolved.authenticator = nkeyAuthenticator(new TextEncoder().encode(options.nkeySeed));
  if (options.tls === true) resolved.tls = {};
  else if (typeof options.tls === 'object') resolved.tls = options.tls;
  return resolved;
}

function mac(key: Buffer, subject: string, header: Uint8Array, payload: Uint8Array): Buffer {
  return createHmac('sha256', key).update(subject).update(header).update(payload).digest();
}

/** The bytes of `frame` as published on `subject`. */
export function encodeFrame(key: Buffer, subject: string, frame: Frame): Buffer {
  const bytes = Buffer.allocUnsafe(PAYLOAD_OFFSET + frame.payload.byteLength);
  bytes.writeUInt8(FRAME_VERSION, 0);
  bytes.writeUInt8(frame.kind, 1);
  bytes.writeUInt8(frame.flags, 2);
  bytes.writeUInt8(0, 3);
  bytes.writeUInt32BE(frame.from, 4);
  bytes.writeUIntBE(frame.stamp, 8, 6);
  bytes.writeUIntBE(frame.seq, 14, 6);
  bytes.writeUIntBE(frame.ack, 20, 6);
  bytes.set(frame.payload, PAYLOAD_OFFSET);
  const header = bytes.subarray(0, HEADER_BYTES);
  mac(key, subject, header, frame.payload).copy(bytes, HEADER_BYTES);
  return bytes;
}

/** The frame in `data` received on `subject`, or undefined when it is malformed or forged. */
export function decodeFrame(key: Buffer, subject: string, data: Uint8Array): Frame | undefined {
  if (data.byteLength < PAYLOAD_OFFSET) return undefined;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (bytes.readUInt8(0) !== FRAME_VERSION) return undefined;
  const kind = bytes.readUInt8(1);
  if (kind < FrameKind.data || kind > FrameKind.assign) return undefined;
  const payload = bytes.subarray(PAYLOAD_OFFSET);
  const expected = mac(key, subject, bytes.subarray(0, HEADER_BYTES), payload);
  if (!timingSafeEqual(expected, bytes.subarray(HEADER_BYTES, PAYLOAD_OFFSET))) return undefined;
  return {
    kind: kind as FrameKind,
    flags: bytes.readUInt8(2),
    from: bytes.readUInt32BE(4),
    stamp: bytes.readUIntBE(8, 6),
    seq: bytes.readUIntBE(14, 6),
    ack: bytes.readUIntBE(20, 6),
    payload,
  };
}

/** Subjects: a process's inbox, the join subject, a joiner's private answer subject. */
export const subjects = {
  inbox: (name: string, clusterId: string, index: number) => `norma.${name}.${clusterId}.${index}`,
  join: (name: string) => `norma.${name}.join`,
  joiner: (name: string, nonce: string) => `norma.${name}.join.${nonce}`,
};
