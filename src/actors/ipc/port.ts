/**
 * Ports, receive side: a message queue with its counters and waiting receivers, and port sets
 * (Mach `ipc_mqueue` and `ipc_pset`). Pure and single-realm: the message type is opaque and time
 * comes from an injected `Clock`. The queue limit is not here: senders reserve their places in
 * the port table (port-table.ts), which every node shares, before a message is sent, so a
 * message that reaches its queue is always taken in.
 */
import { ok as assert } from 'node:assert/strict';
import {
  KERN_INVALID_VALUE, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_RCV_IN_SET, MACH_RCV_PORT_CHANGED,
  MACH_RCV_PORT_DIED, MACH_RCV_TIMED_OUT, MACH_RCV_TOO_LARGE, MACH_SEND_INVALID_DEST,
} from '../../shared/constants.js';
import { Deadline, systemClock, type Clock } from './clock.js';

/**
 * The receiver's buffer (mach_msg's rcv_size): a message that does not fit is answered with
 * MACH_RCV_TOO_LARGE instead of being received.
 */
export interface ReceiveLimit<M> {
  fits(msg: M): boolean;
  /**
   * MACH_RCV_LARGE: the message stays queued and is only lent in the result (to read its size).
   * Without it the message is dequeued (its seqno used) and handed over for the caller to destroy.
   */
  readonly large: boolean;
}

export interface ReceiveOptions<M = unknown> {
  /** Milliseconds to wait for a message; 0 polls; absent or Infinity waits for ever. */
  readonly timeoutMs?: number;
  /** The caller's deadline, in place of `timeoutMs`: a call whose waits share one time limit. */
  readonly deadline?: Deadline;
  readonly limit?: ReceiveLimit<M>;
}

export interface ReceiveResult<M> {
  readonly kr: number;
  /** The message received, or with MACH_RCV_TOO_LARGE the one that did not fit. */
  readonly msg?: M;
  /** The port's sequence number stamped on this dequeue (absent when nothing was dequeued). */
  readonly seqno?: number;
}

export interface SetReceiveResult<M> extends ReceiveResult<M> {
  /** The member port the message came from. */
  readonly port?: Port<M>;
}

export type PortState = 'active' | 'dead';

interface Delivery<M> {
  readonly msg: M;
  readonly seqno: number;
}

interface Receiver<M> {
  readonly resolve: (result: SetReceiveResult<M>) => void;
  /** Stops its timeout (the receiver was served or failed first). */
  disarm: () => void;
  readonly limit: ReceiveLimit<M> | undefined;
}

/** True when `receiver` must be answered MACH_RCV_TOO_LARGE for `msg`. */
function tooLarge<M>(limit: ReceiveLimit<M> | undefined, msg: M): limit is ReceiveLimit<M> {
  return limit !== undefined && !limit.fits(msg);
}

/** `undefined` when the timeout is usable, else the RangeError to reject with. */
function timeoutError(timeoutMs: number | undefined): RangeError | undefined {
  if (timeoutMs === undefined || timeoutMs === Infinity) return undefined;
  return typeof timeoutMs === 'number' && timeoutMs >= 0 && Number.isFinite(timeoutMs)
    ? undefined
    : new RangeError('options.timeoutMs must be a non-negative number or Infinity');
}

/**
 * The receive's time limit: the caller's deadline, or one of its own on `clock` (which the
 * receiver's serving cancels, clearing its timer).
 */
function deadlineOf(clock: Clock, options: ReceiveOptions<never>): { deadline: Deadline; own: boolean } {
  if (options.deadline !== undefined) return { deadline: options.deadline, own: false };
  return { deadline: new Deadline(clock, options.timeoutMs ?? Infinity), own: true };
}

/**
 * Makes `list`'s next waiting receiver: it leaves the list and gets MACH_RCV_TIMED_OUT when the
 * deadline passes first.
 */
function waitIn<M>(list: Array<Receiver<M>>, clock: Clock, options: ReceiveOptions<M>,
  resolve: (result: SetReceiveResult<M>) => void): void {
  const { deadline, own } = deadlineOf(clock, options as ReceiveOptions<never>);
  const receiver: Receiver<M> = { resolve, disarm: () => {}, limit: options.limit };
  const unsubscribe = deadline.onExpiry(() => {
    removeFrom(list, receiver);
    resolve({ kr: MACH_RCV_TIMED_OUT });
  });
  receiver.disarm = own ? () => deadline.cancel() : unsubscribe;
  list.push(receiver);
}

/** True when a receive with `options` must not wait (timeout 0, or a deadline already past). */
function polls(options: ReceiveOptions<never>): boolean {
  return options.deadline !== undefined ? options.deadline.expired : options.timeoutMs === 0;
}

function withoutPort<M>({ kr, msg, seqno }: SetReceiveResult<M>): ReceiveResult<M> {
  return msg === undefined ? { kr } : seqno === undefined ? { kr, msg } : { kr, msg, seqno };
}

function removeFrom<T>(list: T[], item: T): void {
  const index = list.indexOf(item);
  if (index >= 0) list.splice(index, 1);
}

export interface PortOptions {
  readonly clock?: Clock;
}

/**
 * One port's receive side. Receivers wait without spinning. Messages leave in arrival order, so
 * each sender's order is kept.
 */
export class Port<M> {
  readonly #clock: Clock;
  #state: PortState = 'active';
  #queue: M[] = [];
  #seqno = 0;
  #mscount = 0;
  readonly #receivers: Array<Receiver<M>> = [];
  #set: PortSet<M> | null = null;

  constructor(options: PortOptions = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  get state(): PortState { return this.#state; }
  /** Messages queued now. */
  get msgcount(): number { return this.#queue.length; }
  /** The sequence number the next dequeue will stamp. */
  get seqno(): number { return this.#seqno; }
  get mscount(): number { return this.#mscount; }
  /** The set this port is a member of, if any. */
  get set(): PortSet<M> | null { return this.#set; }
  /** Receivers waiting on this port directly. */
  get waitingReceivers(): number { return this.#receivers.length; }

  /** mach_port_set_seqno. Returns: KERN_SUCCESS; KERN_INVALID_VALUE for a negative non-integer. */
  setSeqno(seqno: number): number {
    if (!Number.isSafeInteger(seqno) || seqno < 0) return KERN_INVALID_VALUE;
    this.#seqno = seqno;
    return KERN_SUCCESS;
  }

  /** mach_port_set_mscount. Returns: KERN_SUCCESS; KERN_INVALID_VALUE as for setSeqno. */
  setMscount(mscount: number): number {
    if (!Number.isSafeInteger(mscount) || mscount < 0) return KERN_INVALID_VALUE;
    this.#mscount = mscount;
    return KERN_SUCCESS;
  }

  /**
   * MAKE_SEND: the make-send count goes up by one. (Send rights are counted in the port table,
   * which alone decides no-senders.)
   */
  makeSend(): void {
    this.#mscount++;
  }

  /** The receive right moved (ipc_port_clear_receiver): mscount and seqno restart at 0. */
  clearReceiver(): void {
    this.#mscount = 0;
    this.#seqno = 0;
  }

  /**
   * Enqueues `msg` (ipc_mqueue_send): straight to a waiting receiver if there is one, else into
   * the queue. Its sender reserved its place in the port table (or sent it on a send-once
   * right, which takes no place), so it is never refused for space.
   * Returns: MACH_MSG_SUCCESS; MACH_SEND_INVALID_DEST when the port is dead (the message stays
   * the caller's, its rights included).
   */
  send(msg: M): number {
    if (this.#state === 'dead') return MACH_SEND_INVALID_DEST;
    // A waiting receiver means nothing is queued (here, or in any member of the set). As in
    // xnu's ipc_mqueue_post, a receiver whose buffer is too small under MACH_RCV_LARGE is woken
    // with the size and the message goes on to the next one (or the queue); one without
    // MACH_RCV_LARGE takes it, to destroy it.
    for (;;) {
      const receiver = this.#set !== null ? this.#set.takeReceiver() : this.#receivers.shift();
      if (receiver === undefined) break;
      receiver.disarm();
      if (tooLarge(receiver.limit, msg) && receiver.limit.large) {
        receiver.resolve({ kr: MACH_RCV_TOO_LARGE, msg, port: this });
        continue;
      }
      const kr = tooLarge(receiver.limit, msg) ? MACH_RCV_TOO_LARGE : MACH_MSG_SUCCESS;
      receiver.resolve({ kr, msg, seqno: this.#seqno++, port: this });
      return MACH_MSG_SUCCESS;
    }
    this.#queue.push(msg);
    return MACH_MSG_SUCCESS;
  }

  /**
   * Dequeues the next message (ipc_mqueue_receive), stamping it with the port's sequence
   * number; waits, without spinning, when none is queued.
   * Returns (resolves to): MACH_MSG_SUCCESS with `msg` and `seqno`; MACH_RCV_TOO_LARGE with the
   * message that does not fit `options.limit` (see ReceiveLimit); MACH_RCV_TIMED_OUT when none
   * came within `timeoutMs` (at once for 0) or by `deadline`; MACH_RCV_IN_SET when the port is
   * in a port set; MACH_RCV_PORT_CHANGED when it joined a set during the wait;
   * MACH_RCV_PORT_DIED when the port is or becomes dead. Rejects with RangeError for a bad
   * `timeoutMs`.
   */
  receive(options: ReceiveOptions<M> = {}): Promise<ReceiveResult<M>> {
    const bad = timeoutError(options.timeoutMs);
    if (bad) return Promise.reject(bad);
    const now = this.poll(options.limit);
    if (now !== undefined) return Promise.resolve(now);
    if (polls(options as ReceiveOptions<never>)) return Promise.resolve({ kr: MACH_RCV_TIMED_OUT });
    return new Promise((resolve) => waitIn(this.#receivers, this.#clock, options, (result) => resolve(withoutPort(result))));
  }

  /**
   * receive's answer when it need not wait (a message is queued, or the port cannot be received
   * from), synchronously; undefined when a receive would wait.
   */
  poll(limit?: ReceiveLimit<M>): ReceiveResult<M> | undefined {
    if (this.#state === 'dead') return { kr: MACH_RCV_PORT_DIED };
    if (this.#set !== null) return { kr: MACH_RCV_IN_SET };
    return this.ready ? withoutPort(this.serve(limit)) : undefined;
  }

  /**
   * The port dies (ipc_port_destroy): waiting receivers get MACH_RCV_PORT_DIED and the port
   * leaves its set. Idempotent.
   * Returns the messages that were queued: the caller destroys the rights inside them.
   */
  destroy(): M[] {
    if (this.#state === 'dead') return [];
    this.#state = 'dead';
    this.#set?.remove(this);
    const queued = this.#queue;
    this.#queue = [];
    this.failReceivers(MACH_RCV_PORT_DIED);
    return queued;
  }

  /**
   * Fails every receiver waiting on this port directly with `kr` (the receive right left this
   * node with its queue).
   */
  failReceivers(kr: number): void {
    for (const receiver of this.#receivers.splice(0)) {
      receiver.disarm();
      receiver.resolve({ kr });
    }
  }

  /** The messages queued now, oldest first. @internal For the IPC layer's bookkeeping. */
  get queued(): readonly M[] {
    return this.#queue;
  }

  /** True when a receive would get a message now. @internal */
  get ready(): boolean {
    return this.#queue.length > 0;
  }

  /**
   * Serves one receiver with `limit` from this port, which is `ready`: the next message, or
   * MACH_RCV_TOO_LARGE with it (left queued under MACH_RCV_LARGE, else dequeued).
   * @internal Shared with PortSet.
   */
  serve(limit: ReceiveLimit<M> | undefined): SetReceiveResult<M> {
    const head = this.#queue[0]!;
    if (tooLarge(limit, head) && limit.large) return { kr: MACH_RCV_TOO_LARGE, msg: head, port: this };
    const kr = tooLarge(limit, head) ? MACH_RCV_TOO_LARGE : MACH_MSG_SUCCESS;
    return { kr, ...this.take()!, port: this };
  }

  /**
   * Takes the next message, if any.
   * @internal Shared with PortSet.
   */
  take(): Delivery<M> | undefined {
    if (this.#queue.length === 0) return undefined;
    return { msg: this.#queue.shift()!, seqno: this.#seqno++ };
  }

  /**
   * Joins `set` (or leaves any set, for null). Receivers waiting on the port directly are
   * failed with MACH_RCV_PORT_CHANGED, since it can no longer be received from.
   * @internal Called by PortSet.add/remove only.
   */
  attach(set: PortSet<M> | null): void {
    this.#set = set;
    if (set !== null) this.failReceivers(MACH_RCV_PORT_CHANGED);
  }
}

export interface PortSetOptions {
  readonly clock?: Clock;
}

/**
 * A port set (ipc_pset): receives from whichever member has a message, round-robin from the
 * member after the last one served, so no member starves. A port is in one set at most.
 */
export class PortSet<M> {
  readonly #clock: Clock;
  #state: PortState = 'active';
  readonly #members: Array<Port<M>> = [];
  /** Index of the member the next scan starts from. */
  #cursor = 0;
  readonly #receivers: Array<Receiver<M>> = [];

  constructor(options: PortSetOptions = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  get state(): PortState { return this.#state; }
  /** Members in joining order. */
  get members(): ReadonlyArray<Port<M>> { return this.#members; }
  get waitingReceivers(): number { return this.#receivers.length; }

  /**
   * Moves `port` into this set, out of any other set (mach_port_move_member). Receivers
   * waiting on the set are served at once if the port has messages.
   * Conditions: both the set and the port are active (asserted).
   */
  add(port: Port<M>): void {
    assert(this.#state === 'active' && port.state === 'active', 'add to or of a dead object');
    if (port.set === this) return;
    port.set?.remove(port);
    this.#members.push(port);
    port.attach(this);
    while (this.#receivers.length > 0 && port.ready) {
      const receiver = this.#receivers.shift()!;
      receiver.disarm();
      receiver.resolve(port.serve(receiver.limit));
    }
  }

  /** Takes `port` out of this set. Returns false when it was not a member (KERN_NOT_IN_SET). */
  remove(port: Port<M>): boolean {
    const index = this.#members.indexOf(port);
    if (index < 0) return false;
    this.#members.splice(index, 1);
    if (index < this.#cursor) this.#cursor--;
    if (this.#cursor >= this.#members.length) this.#cursor = 0;
    port.attach(null);
    return true;
  }

  /**
   * Receives from the first member with a message, scanning round-robin (ipc_mqueue_receive on
   * a set); waits, without spinning, when no member has one.
   * Returns (resolves to): MACH_MSG_SUCCESS with `msg`, `seqno` (the member's) and `port` (the
   * member); MACH_RCV_TOO_LARGE as Port.receive; MACH_RCV_TIMED_OUT; MACH_RCV_PORT_DIED when the
   * set is or becomes destroyed.
   * Rejects with RangeError for a bad `timeoutMs`.
   */
  receive(options: ReceiveOptions<M> = {}): Promise<SetReceiveResult<M>> {
    const bad = timeoutError(options.timeoutMs);
    if (bad) return Promise.reject(bad);
    const now = this.poll(options.limit);
    if (now !== undefined) return Promise.resolve(now);
    if (polls(options as ReceiveOptions<never>)) return Promise.resolve({ kr: MACH_RCV_TIMED_OUT });
    return new Promise((resolve) => waitIn(this.#receivers, this.#clock, options, resolve));
  }

  /** receive's answer when it need not wait, synchronously; undefined when a receive would wait. */
  poll(limit?: ReceiveLimit<M>): SetReceiveResult<M> | undefined {
    if (this.#state === 'dead') return { kr: MACH_RCV_PORT_DIED };
    const count = this.#members.length;
    for (let step = 0; step < count; step++) {
      const index = (this.#cursor + step) % count;
      const port = this.#members[index]!;
      if (!port.ready) continue;
      this.#cursor = (index + 1) % count;
      return port.serve(limit);
    }
    return undefined;
  }

  /**
   * Destroys the set: waiting receivers get MACH_RCV_PORT_DIED and every member leaves (its
   * messages stay queued on it). Idempotent.
   */
  destroy(): void {
    if (this.#state === 'dead') return;
    this.#state = 'dead';
    for (const port of [...this.#members]) this.remove(port);
    for (const receiver of this.#receivers.splice(0)) {
      receiver.disarm();
      receiver.resolve({ kr: MACH_RCV_PORT_DIED });
    }
  }

  /**
   * The first waiting receiver, removed from the wait list, for a member's sender to serve.
   * @internal Called by Port.send only.
   */
  takeReceiver(): Receiver<M> | undefined {
    return this.#receivers.shift();
  }
}
