/**
 * Ports, receive side: a message queue with its limit, counters, waiting senders and receivers,
 * and port sets (Mach `ipc_port`, `ipc_mqueue` and `ipc_pset`). Pure and single-realm: the
 * message type is opaque and time comes from an injected `Clock`.
 */
import { ok as assert } from 'node:assert/strict';
import {
  KERN_INVALID_VALUE, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_PORT_QLIMIT_DEFAULT,
  MACH_PORT_QLIMIT_MAX, MACH_RCV_IN_SET, MACH_RCV_PORT_CHANGED, MACH_RCV_PORT_DIED,
  MACH_RCV_TIMED_OUT, MACH_RCV_TOO_LARGE, MACH_SEND_INVALID_DEST, MACH_SEND_TIMED_OUT,
} from '../../shared/constants.js';

/** The timer source behind send and receive timeouts; tests inject a simulated one. */
export interface Clock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's own timers. setTimeout fires at once past 2^31 − 1 ms, so long waits are chained. */
const TIMER_MAX = 0x7fffffff;
export const systemClock: Clock = {
  setTimeout(callback, ms) {
    const handle: { timer?: ReturnType<typeof setTimeout> } = {};
    const arm = (left: number): void => {
      handle.timer = left > TIMER_MAX
        ? setTimeout(() => arm(left - TIMER_MAX), TIMER_MAX)
        : setTimeout(callback, left);
    };
    arm(ms);
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout((handle as { timer?: ReturnType<typeof setTimeout> }).timer);
  },
};

export interface SendOptions {
  /** Milliseconds to wait for queue space; 0 polls; absent or Infinity waits for ever. */
  readonly timeoutMs?: number;
  /** The message travels on a send-once right: it ignores the queue limit. */
  readonly sendOnce?: boolean;
}

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
  timer: unknown;
  readonly limit: ReceiveLimit<M> | undefined;
}

/** True when `receiver` must be answered MACH_RCV_TOO_LARGE for `msg`. */
function tooLarge<M>(limit: ReceiveLimit<M> | undefined, msg: M): limit is ReceiveLimit<M> {
  return limit !== undefined && !limit.fits(msg);
}

interface BlockedSender<M> {
  readonly msg: M;
  readonly resolve: (kr: number) => void;
  timer: unknown;
}

const NO_TIMER = Symbol('no timer');

/** `undefined` when the timeout is usable, else the RangeError to reject with. */
function timeoutError(timeoutMs: number | undefined): RangeError | undefined {
  if (timeoutMs === undefined || timeoutMs === Infinity) return undefined;
  return typeof timeoutMs === 'number' && timeoutMs >= 0 && Number.isFinite(timeoutMs)
    ? undefined
    : new RangeError('options.timeoutMs must be a non-negative number or Infinity');
}

function isQlimit(qlimit: number): boolean {
  return Number.isInteger(qlimit) && qlimit >= 0 && qlimit <= MACH_PORT_QLIMIT_MAX;
}

/**
 * Arms `waiter`'s timeout: after `timeoutMs`, `expire` runs unless the waiter was served first
 * (serving clears the timer). No timer at all for an unbounded wait.
 */
function armTimer(clock: Clock, waiter: { timer: unknown }, timeoutMs: number | undefined,
  expire: () => void): void {
  waiter.timer = timeoutMs === undefined || timeoutMs === Infinity
    ? NO_TIMER
    : clock.setTimeout(expire, timeoutMs);
}

function disarm(clock: Clock, waiter: { timer: unknown }): void {
  if (waiter.timer !== NO_TIMER) clock.clearTimeout(waiter.timer);
  waiter.timer = NO_TIMER;
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
  /** Initial queue limit, 0..MACH_PORT_QLIMIT_MAX; MACH_PORT_QLIMIT_DEFAULT when absent. */
  readonly qlimit?: number;
}

/**
 * One port's receive side. Senders past the queue limit wait in FIFO order (back-pressure, never
 * loss); receivers wait without spinning. Messages leave in arrival order, so each sender's
 * order is kept.
 */
export class Port<M> {
  readonly #clock: Clock;
  #state: PortState = 'active';
  #queue: M[] = [];
  #qlimit: number;
  #seqno = 0;
  #mscount = 0;
  #srights = 0;
  #sorights = 0;
  readonly #receivers: Array<Receiver<M>> = [];
  readonly #senders: Array<BlockedSender<M>> = [];
  #set: PortSet<M> | null = null;

  constructor(options: PortOptions = {}) {
    const qlimit = options.qlimit ?? MACH_PORT_QLIMIT_DEFAULT;
    if (!isQlimit(qlimit)) {
      throw new RangeError(`options.qlimit must be an integer from 0 to ${MACH_PORT_QLIMIT_MAX}`);
    }
    this.#clock = options.clock ?? systemClock;
    this.#qlimit = qlimit;
  }

  get state(): PortState { return this.#state; }
  get qlimit(): number { return this.#qlimit; }
  /** Messages queued now (send-once messages may take it past the limit). */
  get msgcount(): number { return this.#queue.length; }
  /** The sequence number the next dequeue will stamp. */
  get seqno(): number { return this.#seqno; }
  get mscount(): number { return this.#mscount; }
  /** Send rights in existence, in any space or in transit (one per name, not per uref). */
  get srights(): number { return this.#srights; }
  get sorights(): number { return this.#sorights; }
  /** The set this port is a member of, if any. */
  get set(): PortSet<M> | null { return this.#set; }
  /** Senders waiting for queue space. */
  get blockedSenders(): number { return this.#senders.length; }
  /** Receivers waiting on this port directly. */
  get waitingReceivers(): number { return this.#receivers.length; }

  /**
   * mach_port_set_qlimit: changes the queue limit. Raising it admits waiting senders at once;
   * lowering it keeps messages already queued.
   * Returns: KERN_SUCCESS; KERN_INVALID_VALUE unless 0 ≤ qlimit ≤ MACH_PORT_QLIMIT_MAX.
   */
  setQlimit(qlimit: number): number {
    if (!isQlimit(qlimit)) return KERN_INVALID_VALUE;
    this.#qlimit = qlimit;
    this.#admitSenders();
    return KERN_SUCCESS;
  }

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

  /** MAKE_SEND: make-send count and send-right count each up by one. */
  makeSend(): void {
    this.#mscount++;
    this.#srights++;
  }

  /** One more send right (COPY_SEND). */
  copySend(): void {
    this.#srights++;
  }

  /**
   * One send right gone. Returns true when it was the last: the caller sends no-senders with
   * the current `mscount` if a request is armed.
   */
  releaseSend(): boolean {
    assert(this.#srights > 0, 'releaseSend with no send rights');
    return --this.#srights === 0;
  }

  makeSendOnce(): void {
    this.#sorights++;
  }

  /** A send-once right used or destroyed (the send-once notification is the caller's). */
  releaseSendOnce(): void {
    assert(this.#sorights > 0, 'releaseSendOnce with no send-once rights');
    this.#sorights--;
  }

  /** The receive right moved (ipc_port_clear_receiver): mscount and seqno restart at 0. */
  clearReceiver(): void {
    this.#mscount = 0;
    this.#seqno = 0;
  }

  /**
   * Enqueues `msg` (ipc_mqueue_send). Straight to a waiting receiver if there is one; else into
   * the queue when below the limit (always, for a send-once message); else the sender waits
   * behind earlier blocked senders until a receive frees space.
   * Conditions: on any result but MACH_MSG_SUCCESS the message was not queued and stays the
   * caller's (its rights included).
   * Returns (resolves to): MACH_MSG_SUCCESS; MACH_SEND_TIMED_OUT when no space came within
   * `timeoutMs` (at once for 0); MACH_SEND_INVALID_DEST when the port is or becomes dead.
   * Rejects with RangeError for a bad `timeoutMs`.
   */
  send(msg: M, options: SendOptions = {}): Promise<number> {
    const bad = timeoutError(options.timeoutMs);
    if (bad) return Promise.reject(bad);
    if (this.#state === 'dead') return Promise.resolve(MACH_SEND_INVALID_DEST);
    // A waiting receiver means nothing is queued (here, or in any member of the set). As in
    // xnu's ipc_mqueue_post, a receiver whose buffer is too small under MACH_RCV_LARGE is woken
    // with the size and the message goes on to the next one (or the queue); one without
    // MACH_RCV_LARGE takes it, to destroy it.
    for (;;) {
      const receiver = this.#set !== null ? this.#set.takeReceiver() : this.#receivers.shift();
      if (receiver === undefined) break;
      disarm(this.#clock, receiver);
      if (tooLarge(receiver.limit, msg) && receiver.limit.large) {
        receiver.resolve({ kr: MACH_RCV_TOO_LARGE, msg, port: this });
        continue;
      }
      const kr = tooLarge(receiver.limit, msg) ? MACH_RCV_TOO_LARGE : MACH_MSG_SUCCESS;
      receiver.resolve({ kr, msg, seqno: this.#seqno++, port: this });
      return Promise.resolve(MACH_MSG_SUCCESS);
    }
    if (options.sendOnce === true ||
        (this.#senders.length === 0 && this.#queue.length < this.#qlimit)) {
      this.#queue.push(msg);
      return Promise.resolve(MACH_MSG_SUCCESS);
    }
    if (options.timeoutMs === 0) return Promise.resolve(MACH_SEND_TIMED_OUT);
    return new Promise((resolve) => {
      const sender: BlockedSender<M> = { msg, resolve, timer: NO_TIMER };
      armTimer(this.#clock, sender, options.timeoutMs, () => {
        removeFrom(this.#senders, sender);
        resolve(MACH_SEND_TIMED_OUT);
      });
      this.#senders.push(sender);
    });
  }

  /**
   * Dequeues the next message (ipc_mqueue_receive), stamping it with the port's sequence
   * number; waits, without spinning, when none is queued.
   * Returns (resolves to): MACH_MSG_SUCCESS with `msg` and `seqno`; MACH_RCV_TOO_LARGE with the
   * message that does not fit `options.limit` (see ReceiveLimit); MACH_RCV_TIMED_OUT when none
   * came within `timeoutMs` (at once for 0); MACH_RCV_IN_SET when the port is in a port set;
   * MACH_RCV_PORT_CHANGED when it joined a set during the wait; MACH_RCV_PORT_DIED when the
   * port is or becomes dead. Rejects with RangeError for a bad `timeoutMs`.
   */
  receive(options: ReceiveOptions<M> = {}): Promise<ReceiveResult<M>> {
    const bad = timeoutError(options.timeoutMs);
    if (bad) return Promise.reject(bad);
    if (this.#state === 'dead') return Promise.resolve({ kr: MACH_RCV_PORT_DIED });
    if (this.#set !== null) return Promise.resolve({ kr: MACH_RCV_IN_SET });
    if (this.ready) return Promise.resolve(withoutPort(this.serve(options.limit)));
    if (options.timeoutMs === 0) return Promise.resolve({ kr: MACH_RCV_TIMED_OUT });
    return new Promise((resolve) => {
      const receiver: Receiver<M> = {
        resolve: (result) => resolve(withoutPort(result)),
        timer: NO_TIMER,
        limit: options.limit,
      };
      armTimer(this.#clock, receiver, options.timeoutMs, () => {
        removeFrom(this.#receivers, receiver);
        resolve({ kr: MACH_RCV_TIMED_OUT });
      });
      this.#receivers.push(receiver);
    });
  }

  /**
   * The port dies (ipc_port_destroy): waiting receivers get MACH_RCV_PORT_DIED, blocked senders
   * MACH_SEND_INVALID_DEST (keeping their messages), and the port leaves its set. Idempotent.
   * Returns the messages that were queued: the caller destroys the rights inside them.
   */
  destroy(): M[] {
    if (this.#state === 'dead') return [];
    this.#state = 'dead';
    this.#set?.remove(this);
    const queued = this.#queue;
    this.#queue = [];
    for (const receiver of this.#receivers.splice(0)) {
      disarm(this.#clock, receiver);
      receiver.resolve({ kr: MACH_RCV_PORT_DIED });
    }
    for (const sender of this.#senders.splice(0)) {
      disarm(this.#clock, sender);
      sender.resolve(MACH_SEND_INVALID_DEST);
    }
    return queued;
  }

  /**
   * Fails every receiver waiting on this port directly with `kr` (the receive right left this
   * node with its queue).
   */
  failReceivers(kr: number): void {
    for (const receiver of this.#receivers.splice(0)) {
      disarm(this.#clock, receiver);
      receiver.resolve({ kr });
    }
  }

  /** The messages queued now, oldest first. @internal For the IPC layer's bookkeeping. */
  get queued(): readonly M[] {
    return this.#queue;
  }

  /** True when a receive would get a message now. @internal */
  get ready(): boolean {
    return this.#queue.length > 0 || this.#senders.length > 0;
  }

  /**
   * Serves one receiver with `limit` from this port, which is `ready`: the next message, or
   * MACH_RCV_TOO_LARGE with it (left queued under MACH_RCV_LARGE, else dequeued).
   * @internal Shared with PortSet.
   */
  serve(limit: ReceiveLimit<M> | undefined): SetReceiveResult<M> {
    const head = this.#queue.length > 0 ? this.#queue[0]! : this.#senders[0]!.msg;
    if (tooLarge(limit, head) && limit.large) return { kr: MACH_RCV_TOO_LARGE, msg: head, port: this };
    const kr = tooLarge(limit, head) ? MACH_RCV_TOO_LARGE : MACH_MSG_SUCCESS;
    return { kr, ...this.take()!, port: this };
  }

  /**
   * Takes the next message, if any: from the queue (then admits blocked senders into the space
   * it freed), or, with nothing queued and a qlimit of 0, straight from the first blocked sender.
   * @internal Shared with PortSet.
   */
  take(): Delivery<M> | undefined {
    let msg: M;
    if (this.#queue.length > 0) {
      msg = this.#queue.shift()!;
      this.#admitSenders();
    } else {
      const sender = this.#senders.shift();
      if (sender === undefined) return undefined;
      disarm(this.#clock, sender);
      sender.resolve(MACH_MSG_SUCCESS);
      msg = sender.msg;
    }
    return { msg, seqno: this.#seqno++ };
  }

  /**
   * Joins `set` (or leaves any set, for null). Receivers waiting on the port directly are
   * failed with MACH_RCV_PORT_CHANGED, since it can no longer be received from.
   * @internal Called by PortSet.add/remove only.
   */
  attach(set: PortSet<M> | null): void {
    this.#set = set;
    if (set === null) return;
    for (const receiver of this.#receivers.splice(0)) {
      disarm(this.#clock, receiver);
      receiver.resolve({ kr: MACH_RCV_PORT_CHANGED });
    }
  }

  #admitSenders(): void {
    while (this.#senders.length > 0 && this.#queue.length < this.#qlimit) {
      const sender = this.#senders.shift()!;
      disarm(this.#clock, sender);
      this.#queue.push(sender.msg);
      sender.resolve(MACH_MSG_SUCCESS);
    }
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
      disarm(this.#clock, receiver);
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
    if (this.#state === 'dead') return Promise.resolve({ kr: MACH_RCV_PORT_DIED });
    const count = this.#members.length;
    for (let step = 0; step < count; step++) {
      const index = (this.#cursor + step) % count;
      const port = this.#members[index]!;
      if (!port.ready) continue;
      this.#cursor = (index + 1) % count;
      return Promise.resolve(port.serve(options.limit));
    }
    if (options.timeoutMs === 0) return Promise.resolve({ kr: MACH_RCV_TIMED_OUT });
    return new Promise((resolve) => {
      const receiver: Receiver<M> = { resolve, timer: NO_TIMER, limit: options.limit };
      armTimer(this.#clock, receiver, options.timeoutMs, () => {
        removeFrom(this.#receivers, receiver);
        resolve({ kr: MACH_RCV_TIMED_OUT });
      });
      this.#receivers.push(receiver);
    });
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
      disarm(this.#clock, receiver);
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
