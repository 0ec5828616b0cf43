/**
 * This node's senders blocked on full queues (the senders Mach keeps waiting on a port's
 * `ipc_mqueue`): a first-come first-served queue per port slot, woken one per freed place.
 * The port table's flags say which nodes have blocked senders for a slot (port-table.ts): a
 * place freed on any node wakes one waiting node, through its doorbell or, on this node, with
 * no doorbell at all; the node then wakes its first sender, which takes the place. So a blocked
 * sender costs nothing until a place is free, a dequeue wakes one sender instead of all, and
 * the wait is the node's one wait point, the doorbell its serve loop already spins on.
 */
import type { PortId } from '../../shared/types.js';
import type { Deadline } from './clock.js';
import { portSlot, type PortTable } from './port-table.js';

/** One blocked sender: `woken` settles true when it should try for a place again. */
export interface BlockedSender {
  readonly port: PortId;
  readonly woken: Promise<boolean>;
}

interface Waiter extends BlockedSender {
  readonly resolve: (woken: boolean) => void;
}

/** What the node counts of its senders' waits (NodeIpc.counters). */
export interface SenderCounters {
  /** Sends that found the queue full and waited. */
  sendersBlocked: number;
  /** Blocked senders woken to try again. */
  sendersWoken: number;
}

export class BlockedSenders {
  readonly #table: PortTable;
  readonly #counters: SenderCounters;
  readonly #bySlot = new Map<number, Waiter[]>();

  constructor(table: PortTable, counters: SenderCounters) {
    this.#table = table;
    this.#counters = counters;
  }

  /** Senders blocked here now (tests and statistics). */
  get size(): number {
    let size = 0;
    for (const waiters of this.#bySlot.values()) size += waiters.length;
    return size;
  }

  /**
   * A sender found `port`'s queue full: it waits, last in line (or first: one woken that lost
   * the place again keeps its turn). Its node's flag is set before this returns, so the
   * caller's next look at the queue and any place freed afterwards cannot both miss it.
   */
  block(port: PortId, first: boolean): BlockedSender {
    const slot = portSlot(port);
    let waiters = this.#bySlot.get(slot);
    if (waiters === undefined) {
      this.#bySlot.set(slot, waiters = []);
      this.#table.setBlocked(slot, true);
    }
    let resolve!: (woken: boolean) => void;
    const woken = new Promise<boolean>((settle) => { resolve = settle; });
    const waiter: Waiter = { port, woken, resolve };
    if (first) waiters.unshift(waiter);
    else waiters.push(waiter);
    this.#counters.sendersBlocked++;
    return waiter;
  }

  /**
   * The sender stops waiting without having been woken (it found a place after all, or its
   * deadline passed). If it was the last here and a place is free, the wake goes to another node.
   */
  leave(sender: BlockedSender): void {
    const slot = portSlot(sender.port);
    const waiters = this.#bySlot.get(slot);
    const index = waiters?.indexOf(sender as Waiter) ?? -1;
    if (index < 0) return;
    waiters!.splice(index, 1);
    if (waiters!.length === 0) this.#emptied(slot, sender.port);
  }

  /**
   * A place of `port` is free for this node (the port table chose it): its first sender is
   * woken; with none left here, the place goes to another waiting node.
   */
  wakeOne(port: PortId): void {
    const slot = portSlot(port);
    const waiters = this.#bySlot.get(slot);
    const first = waiters?.shift();
    if (first === undefined) {
      if (waiters !== undefined) this.#bySlot.delete(slot);
      this.#table.setBlocked(slot, false);
      this.#passOn(port);
      return;
    }
    if (waiters!.length === 0) this.#emptied(slot, port, false);
    this.#wake(first);
  }

  /**
   * A woken sender did not take the place it was woken for (its send failed, or went to another
   * port): the next sender here, or another node, gets it.
   */
  passOn(port: PortId): void {
    if (!this.#table.hasPlace(port)) return;
    if (this.#bySlot.has(portSlot(port))) this.wakeOne(port);
    else this.#passOn(port);
  }

  /**
   * The doorbell said a place may be free for a port whose senders wait here, or one died or
   * changed its limit: as many senders as there are free places are woken, every one of a
   * dead port.
   */
  recheck(): void {
    for (const [slot, waiters] of [...this.#bySlot]) {
      const { port } = waiters[0]!;
      const free = !this.#table.isAlive(port) ? waiters.length
        : Math.max(1, this.#table.qlimit(port)) - this.#table.msgcount(port);
      if (free <= 0) continue;
      const woken = waiters.splice(0, free);
      if (waiters.length === 0) this.#emptied(slot, port, false);
      for (const waiter of woken) this.#wake(waiter);
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
      if (reserved !== 'full') {
        if (reserved === 'dead' && first) this.passOn(port);
        return reserved;
      }
      if (deadline.expired) {
        if (first) this.passOn(port);
        return 'expired';
      }
      const sender = this.block(port, first);
      if (this.#table.reserve(port) === 'reserved') {
        this.leave(sender);
        return 'reserved';
      }
      first = await deadline.race(sender.woken, false);
      if (!first) this.leave(sender);
    }
  }

  #wake(waiter: Waiter): void {
    this.#counters.sendersWoken++;
    waiter.resolve(true);
  }

  /** The last sender waiting for `slot` here is gone: the flag drops, and a free place moves on. */
  #emptied(slot: number, port: PortId, passOn = true): void {
    this.#bySlot.delete(slot);
    this.#table.setBlocked(slot, false);
    if (passOn) this.#passOn(port);
  }

  /** Wakes another node's sender if a place is free (this node's flag is down: the table picks another). */
  #passOn(port: PortId): void {
    if (this.#table.hasPlace(port)) this.#table.wakeOne(port);
  }
}
