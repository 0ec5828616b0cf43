/**
 * The records the gateway's two sides keep: a proxy (gateway-proxies.ts) and what an export
 * holds for other processes (gateway-exports.ts).
 */
import { MACH_NOTIFY_NO_SENDERS, MACH_PORT_NULL } from '../shared/constants.js';
import type { MachMsgReceived } from '../shared/message.js';
import type { ProcessIndex } from './link.js';
import type { WireRight } from './wire.js';

/** Where forwarded messages go: an export of another process. */
export interface Target {
  readonly name: number;
  readonly home: ProcessIndex;
  readonly export: number;
}

export interface Proxy {
  readonly name: number;
  /** Where it forwards; a location hint changes it (after a fence). */
  home: ProcessIndex;
  export: number;
  /** Send rights the home counts this process for (granted, not yet released). */
  count: number;
  /** Messages taken for forwarding and not yet acknowledged (the credits in use). */
  inflight: number;
  /** Of those, the ones posted to the current home. */
  unacked: number;
  /** The fence a switch to a new home waits for. */
  fence: { readonly seq: number; readonly home: ProcessIndex; readonly settle: (arrived: boolean) => void } | null;
  /** Rights on their way elsewhere naming the proxy's home (passOn): releases to old homes wait for them. */
  passing: number;
  readonly owed: Array<{ readonly home: ProcessIndex; readonly export: number; readonly count: number }>;
  /** Out of the port set for lack of credit. */
  out: boolean;
  armed: boolean;
  readonly forwarder: boolean;
  /** The forwarding chain: messages leave in the order they arrived. */
  tail: Promise<void>;
  /** Set while a no-senders notification is checked; resolves to whether the proxy closed. */
  closing: Promise<boolean> | null;
  gone: boolean;
}

/** Steps to run once the message is on its way (a uref the gateway got with it, dropped after). */
export type After = Array<() => Promise<unknown>>;

/** Turns a right the gateway received into a wire right for `dest` (gateway.ts). */
export type ToWire = (name: number, type: number, dest: ProcessIndex, after: After) => Promise<WireRight>;

export function newProxy(name: number, home: ProcessIndex, exp: number, forwarder: boolean): Proxy {
  return {
    name, home, export: exp, count: forwarder ? 1 : 0, inflight: 0, unacked: 0, fence: null, passing: 0, owed: [],
    out: false, armed: forwarder, forwarder, tail: Promise.resolve(), closing: null, gone: false,
  };
}

export function key(home: ProcessIndex, exp: number): string { return `${home}:${exp}`; }

/** The shape of the notification: id, a 4-byte count, nothing else. */
export function looksLikeNoSenders(msg: MachMsgReceived): boolean {
  return msg.id === MACH_NOTIFY_NO_SENDERS && msg.remotePort === MACH_PORT_NULL && msg.body.byteLength === 4 &&
    msg.ports.length === 0 && msg.ool.length === 0;
}

export interface SendExport {
  readonly name: number;
  /** The gateway's urefs on the name beyond the one the export keeps: rights that came in since. */
  extra: number;
  /** Rights granted per process (ANY: not yet claimed), and their sum. */
  readonly held: Map<ProcessIndex, number>;
  total: number;
  /** Messages about to send a copy of the right (to it, or carrying it): it stays until they went. */
  pins: number;
  /** Messages to this export go one at a time. */
  tail: Promise<void>;
  /** Processes told where the port went (when it is a forwarder's): once per process while it holds a right. */
  readonly hinted: Set<ProcessIndex>;
}

export function newSendExport(name: number): SendExport {
  return { name, extra: 0, held: new Map(), total: 0, pins: 0, tail: Promise.resolve(), hinted: new Set() };
}

/** A send-once right exported for one process. */
export interface Grant { readonly name: number; readonly grantee: ProcessIndex }

/**
 * A receive right exported for one process, under a token (not a name: the gateway may not
 * hold it yet). `name` settles once it does (null: it never came), so exporting needs nothing
 * of the node the gateway runs on; `qlimit` is the port's queue limit, carried with the wire right.
 */
export interface ReceiveGrant { readonly grantee: ProcessIndex; readonly name: Promise<number | null>; readonly qlimit: number }
