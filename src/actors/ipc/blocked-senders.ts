/**
 * This node's senders blocked on full queues (the senders Mach keeps waiting on a port's
 * `ipc_mqueue`): a first-come first-served line per port slot. A place freed anywhere while
 * senders wait is handed to one waiting node (port-table.ts), through its doorbell or, on this
 * node, with no doorbell at all; the node gives it to the first sender in line, which sends
 * without competing for it. So a blocked sender costs nothing until a place is its, a dequeue
 * wakes one sender instead of all, senders get places in the order they blocked, and the wait
 * is the node's one wait point, the doorbell its serve loop already spins on.
 */
import type { PortId } from '../../shared/types.js';
import type { Deadline } from './clock.js';
import { portSlot, type PortTable } from './port-table.js';

/**
 * Why a blocked sender was woken: `handed`, a queue place is reserved for it (it sends, or gives
 * the place back); `look`, the port died or its limit changed (it tries again like a new sender).
 */
export type Wakeup = 'handed' | 'look';

/** One blocked sender: `woken` settles when it is woken. */
export interface BlockedSender {
  readonly port: PortId;
  readonly woken: Promise<Wakeup>;
}

interface Waiter extends BlockedSender {
  readonly resolve: (wakeup: Wakeup) => void;
  /** The sending task's kernel port (0: the kernel's own send), so a dying task leaves the line. */
  readonly owner: number;
  /** Set when woken, so a sender leaving by its deadline after a place was handed gives it back. */
  wakeup?: Wakeup;
}

/** What the node counts of its senders' waits (NodeIpc.counters). */
export interface SenderCounters {
  /** Sends that found the queue full and waited. */
  sendersBlocked: number;
  /** Blocked senders woken (handed a place, or told to look again). */
  sendersWoken: number;
}

export class BlockedSenders {
  readonly #table: PortTable;
  readonly #counters: SenderCounters;
  /** Gives a place back (NodeIpc.placeFreed): to the next waiting sender, or to the queue. */
  readonly #giveBack: (port: PortId) => void;
  readonly #bySlot = new Map<number, Waiter[]>();

  constructor(table: PortTable, counters: SenderCounters, giveBack: (port: PortId) => void) {
    this.#table = table;
    this.#counters = counters;
    this.#giveBack = giveBack;
  }

  /** Senders blocked here now (tests and statistics). */
  get size(): number {
    let size = 0;
    for (const waiters of this.#bySlot.values()) size += waiters.length;
    return size;
  }

  /**
   * A sender found `port`'s queue full: it waits, last in line (or first: one told to look again
   * that found the queue full keeps its turn). Its node's flag is set before this returns, so
   * the caller's next look at the queue and any place freed afterwards cannot both miss it.
   */
  block(port: PortId, first: boolean, owner = 0): BlockedSender {
    const slot = portSlot(port);
    let waiters = this.#bySlot.get(slot);
    if (waiters === undefined) {
      this.#bySlot.set(slot, waiters = []);
      this.#table.setBlocked(slot, true);
    }
    let resolve!: (wakeup: Wakeup) => void;
    const woken = new Promise<Wakeup>((settle) => { resolve = settle; });
    const waiter: Waiter = { port, woken, resolve, owner };
    if (first) waiters.unshift(waiter);
    else waiters.push(waiter);
    this.#counters.sendersBlocked++;
    return waiter;
  }

  /**
   * The sender stops waiting (it found a place after all, or its deadline passed). A place
   * handed to it that it will not use goes back.
   */
  leave(sender: BlockedSender): void {
    const waiter = sender as Waiter;
    if (waiter.wakeup === 'handed') {
      waiter.wakeup = undefined;
      this.#unused(waiter.port);
      return;
    }
    const slot = portSlot(sender.port);
    const waiters = this.#bySlot.get(slot);
    const index = waiters?.indexOf(waiter) ?? -1;
    if (index < 0) return;
    waiters!.splice(index, 1);
    if (waiters!.length === 0) this.#emptied(slot);
  }

  /**
   * Task `owner` (its kernel port) is terminated: its senders leave every line, told to look
   * again (their send then fails: the task's rights are gone), so none swallows a place.
   */
  forget(owner: number): void {
    for (const [slot, waiters] of [...this.#bySlot]) {
      const leaving = waiters.filter((waiter) => waiter.owner === owner);
      if (leaving.length === 0) continue;
      const staying = waiters.filter((waiter) => waiter.owner !== owner);
      if (staying.length > 0) this.#bySlot.set(slot, staying);
      else this.#emptied(slot);
      for (const waiter of leaving) waiter.resolve('look');
    }
  }

  /** A sender woken with a handed place used it: it is no longer the sender's to give back. */
  used(sender: BlockedSender): void {
    (sender as Waiter).wakeup = undefined;
  }

  /**
   * The doorbell said places were handed to this node, or a port its senders wait on died or
   * changed its limit: handed places go to the first senders in line (extra ones back), every
   * sender of a dead port and as many as now fit a raised limit are told to look again.
   */
  recheck(): void {
    // A place given back while this runs can be handed straight back here: that asks for
    // another pass rather than a second recheck inside this one.
    if (this.#rechecking) {
      this.#again = true;
      return;
    }
    this.#rechecking = true;
    try {
      do {
        this.#again = false;
        this.#recheckOnce();
      } while (this.#again);
    } finally {
      this.#rechecking = false;
    }
  }

  #rechecking = false;
  #again = false;

  #recheckOnce(): void {
    for (const [slot, waiters] of [...this.#bySlot]) {
      if (this.#bySlot.get(slot) !== waiters) continue;
      const { port } = waiters[0]!;
      const handed = this.#table.takeHanded(slot);
      if (!this.#table.isAlive(port)) {
        this.#wake(slot, waiters.length, 'look');
        continue;
      }
      const served = Math.min(handed, waiters.length);
      if (served > 0) this.#wake(slot, served, 'handed');
      for (let extra = served; extra < handed; extra++) this.#unused(port);
      const left = this.#bySlot.get(slot)?.length ?? 0;
      const free = Math.max(1, this.#table.qlimit(port)) - this.#table.msgcount(port);
      if (left > 0 && free > 0) this.#wake(slot, Math.min(free, left), 'look');
    }
  }

  /**
   * Takes a queue place of `port` for a sender that checks nothing else meanwhile (the kernel's
   * own, kern/exception.ts), waiting in line until one is free, the port dies or `deadline` ends.
   */
  async reserve(port: PortId, deadline: Deadline): Promise<'reserved' | 'dead' | 'expired'> {
    let first = false;
    for (;;) {
      const reserved = this.#table.reserve(port);
      if (reserved !== 'full') return reserved;
      if (deadline.expired) return 'expired';
      const sender = this.block(port, first);
      if (this.#table.reserve(port) === 'reserved') {
        this.leave(sender);
        return 'reserved';
      }
      const wakeup = await deadline.race(sender.woken, undefined);
      if (wakeup === 'handed') {
        this.used(sender);
        this.#table.handedUsed(port);
        if (this.#table.isAlive(port)) return 'reserved';
      }
      if (wakeup === undefined) this.leave(sender);
      first = wakeup === 'look';
    }
  }

  /** Wakes the first `count` senders in `slot`'s line with `wakeup`. */
  #wake(slot: number, count: number, wakeup: Wakeup): void {
    const waiters = this.#bySlot.get(slot)!;
    const woken = waiters.splice(0, count);
    if (waiters.length === 0) this.#emptied(slot);
    for (const waiter of woken) {
      this.#counters.sendersWoken++;
      waiter.wakeup = wakeup;
      waiter.resolve(wakeup);
    }
  }

  /** The last sender waiting for `slot` here is gone: the flag drops, and places handed meanwhile go back. */
  #emptied(slot: number): void {
    this.#bySlot.delete(slot);
    const handed = this.#table.setBlocked(slot, false);
    if (handed === 0) return;
    const port = this.#table.portInSlot(slot);
    for (let place = 0; place < handed; place++) if (port !== undefined) this.#unused(port);
  }

  /** A handed place no sender here will use goes back (to the next waiting sender, or the queue). */
  #unused(port: PortId): void {
    this.#table.handedUsed(port);
    this.#giveBack(port);
  }
}
