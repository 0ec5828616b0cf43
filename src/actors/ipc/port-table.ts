/**
 * The kernel-wide port table (layout and slots: port-slots.ts): on top of each port's slot, the
 * queue places senders reserve with Atomics alone, the rights each node holds, and the senders
 * blocked on full queues.
 *
 * Blocked senders (a full queue) wait on their own node, in a queue per port there
 * (blocked-senders.ts); the `blocked` flags say which nodes have any for a slot and `waiting`
 * counts the flags set, so freeing a place costs one load when nobody waits. Whoever frees a
 * place (a dequeue, a destroyed message) and finds senders waiting takes the place again and
 * hands it to one waiting node, taking nodes in turn from a cursor of its own so none is starved
 * by another: the node's `handed` count rises and its doorbell rings, and it gives the place to
 * its first sender. A raised limit or a death wakes every waiting node to look again. A sender
 * sets its node's flag before it looks at the count once more, and a freer lowers the count
 * before it reads the flags: of the two, one sees the other, so no wakeup is lost.
 *
 * The send-once counts say how many send-once rights to each port each node holds: in its
 * spaces, its ports' queues and requests, and in messages on their way to it (a node moves the
 * count to the receiving node before it posts). When a node dies, the survivors turn its count
 * into MACH_NOTIFY_SEND_ONCE messages, as Mach does for a send-once right destroyed unused.
 *
 * The send counts say the same of send rights, beside `srights` (the total, which alone decides
 * no-senders: a sum over nodes read while a right moves could see it on neither node). Rights
 * outside every node (in a task image on its way to a child, in a PortRight token the host
 * holds) count in `srights` only. When a node dies, the survivors subtract its count from
 * `srights`, and a port left with none fires no-senders. Cost on the hot path: one more Atomics
 * add where a right is made or released, two where one leaves for another node.
 */
import { MACH_PORT_QLIMIT_MAX } from '../../shared/constants.js';
import type { NodeId, PortId } from '../../shared/types.js';
import {
  GENERATION, HANDED, LOCATION, MSGCOUNT, NEXT_NEW_SLOT, PORT_SLOTS, PortSlots, QLIMIT, SRIGHTS, WAITING, WORDS, portSlot,
} from './port-slots.js';

export { PORT_SLOTS, PortKind, portSlot, portTableBytes } from './port-slots.js';

export type Reservation = 'reserved' | 'full' | 'dead';

export class PortTable extends PortSlots {
  readonly #wakeSenders: (node: NodeId) => void;
  /** Tells this node's own blocked senders to look at their handed places (NodeIpc sets it). */
  #wakeHere: () => void = () => {};
  /** The node after the one this node last woke: waiting nodes are taken in turn. */
  #nextToWake = 0;

  /**
   * A view of the table for `node` (the host may take one too: it allocates nothing).
   * `wakeSenders(n)` tells node n to look at its blocked senders again (its doorbell).
   */
  constructor(sab: SharedArrayBuffer, node: NodeId, wakeSenders: (node: NodeId) => void = () => {}) {
    super(sab, node);
    this.#wakeSenders = wakeSenders;
  }

  /** What wakes this node's own blocked senders (BlockedSenders.recheck), set by the node's IPC. */
  wakeHereWith(wake: () => void): void { this.#wakeHere = wake; }

  #wake(node: NodeId): void {
    if (node === this.self) this.#wakeHere();
    else this.#wakeSenders(node);
  }

  /** Before the slot can be reused: the nodes woken find this port dead and clear their flags. */
  protected override portKilled(slot: number): void { this.#wakeAll(slot); }

  /** A send-once right to `port` was made on this node. */
  sendOnceMade(port: PortId): void { this.#countSendOnce(port, this.self, 1); }

  /** A send-once right to `port` leaves this node for `to` (counted there before it is posted). */
  sendOnceMoved(port: PortId, to: NodeId): void {
    if (!this.isAlive(port)) return;
    this.#countSendOnce(port, to, 1);
    this.#countSendOnce(port, this.self, -1);
  }

  /** A send-once right to `port` held here was used up: its message reached the port's node. */
  sendOnceUsed(port: PortId): void { this.#countSendOnce(port, this.self, -1); }

  /** Counts only for live ports: a slot's counts restart at 0 when it gets its next port. */
  #countSendOnce(port: PortId, node: NodeId, delta: 1 | -1): void {
    if (node < this.nodeCount && this.isAlive(port)) Atomics.add(this.sendOnceCounts, node * PORT_SLOTS + portSlot(port), delta);
  }

  /**
   * The send-once rights dead node `node` held to live ports located here, each port with how
   * many: taken over by this node (its count rises by as many, and falls again as each
   * notification is sent), so a second sweep finds none.
   */
  takeSendOnces(node: NodeId): Array<readonly [PortId, number]> {
    const taken: Array<readonly [PortId, number]> = [];
    if (node >= this.nodeCount) return taken;
    const used = Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const index = node * PORT_SLOTS + slot;
      if (Atomics.load(this.sendOnceCounts, index) <= 0 || Atomics.load(this.words, slot * WORDS + LOCATION) !== this.self) continue;
      const port = (Atomics.load(this.words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (!this.isAlive(port)) continue;
      const count = Atomics.exchange(this.sendOnceCounts, index, 0);
      if (count <= 0) continue;
      if (this.self < this.nodeCount) Atomics.add(this.sendOnceCounts, this.self * PORT_SLOTS + slot, count);
      taken.push([port, count]);
    }
    return taken;
  }

  /** How many send-once rights to `port` node `node` holds (tests and diagnostics). */
  sendOnceCount(port: PortId, node: NodeId): number {
    return node < this.nodeCount && this.isAlive(port) ? Atomics.load(this.sendOnceCounts, node * PORT_SLOTS + portSlot(port)) : 0;
  }

  qlimit(port: PortId): number { return Atomics.load(this.words, this.at(port, QLIMIT)); }

  /** Sets the queue limit and wakes waiting senders, who may now fit. */
  setQlimit(port: PortId, qlimit: number): void {
    Atomics.store(this.words, this.at(port, QLIMIT), Math.min(qlimit, MACH_PORT_QLIMIT_MAX));
    this.#wakeAll(portSlot(port));
  }

  msgcount(port: PortId): number { return Atomics.load(this.words, this.at(port, MSGCOUNT)); }

  /**
   * Takes a queue place if one is free. A limit of 0 still admits one message at a time, since
   * a place is taken before the message reaches the port's node (no rendezvous across nodes).
   */
  reserve(port: PortId): Reservation {
    const index = this.at(port, MSGCOUNT);
    for (;;) {
      if (!this.isAlive(port)) return 'dead';
      const count = Atomics.load(this.words, index);
      if (count >= Math.max(1, this.qlimit(port))) return 'full';
      if (Atomics.compareExchange(this.words, index, count, count + 1) === count) return 'reserved';
    }
  }

  /**
   * A reserved place is given back (the message was dequeued, or never sent). If senders wait
   * for one, the place is taken again at once and handed to one of them (xnu's
   * ipc_mqueue_release_msgcount "gives away its slot"), so a sender that comes later cannot
   * take it first: blocked senders get places in the order they blocked.
   */
  unreserve(port: PortId): void {
    Atomics.sub(this.words, this.at(port, MSGCOUNT), 1);
    if (Atomics.load(this.words, this.at(port, WAITING)) === 0 || this.reserve(port) !== 'reserved') return;
    this.#handOff(port);
  }

  /**
   * Hands a place of `port` this node holds to the next waiting node in turn (see the class
   * comment): its count of handed places rises and its doorbell rings (this node's own senders
   * are told at once, through the same count). Gives the place back when none waits any more.
   */
  #handOff(port: PortId): void {
    const slot = portSlot(port);
    Atomics.add(this.words, this.at(port, HANDED), 1);
    for (let step = 0; step < this.nodeCount; step++) {
      const node = ((this.#nextToWake + step) % this.nodeCount) as NodeId;
      if (Atomics.load(this.blockedFlags, node * PORT_SLOTS + slot) === 0) continue;
      this.#nextToWake = node + 1;
      const index = node * PORT_SLOTS + slot;
      Atomics.add(this.handedCounts, index, 1);
      this.#wake(node);
      // It cleared its flag meanwhile: it may have looked at its count before our add (it
      // clears the flag, then takes the count), so whichever of us takes the count gives it back.
      if (Atomics.load(this.blockedFlags, index) === 0) {
        for (let back = Atomics.exchange(this.handedCounts, index, 0); back > 0; back--) {
          this.handedUsed(port);
          this.unreserve(port);
        }
      }
      return;
    }
    Atomics.sub(this.words, this.at(port, HANDED), 1);
    Atomics.sub(this.words, this.at(port, MSGCOUNT), 1);
  }

  /**
   * A place handed to a blocked sender is used (its message is posted) or about to be given
   * back: it no longer counts as handed. Every handed place passes here exactly once.
   */
  handedUsed(port: PortId): void {
    if (this.isAlive(port)) Atomics.sub(this.words, this.at(port, HANDED), 1);
  }

  /**
   * Queue places taken that hold no message and never will: handed to senders, not yet used.
   * Read before msgcount, msgcount less this never counts a message in flight out (see
   * LocalPort.prune).
   */
  handed(port: PortId): number { return Atomics.load(this.words, this.at(port, HANDED)); }

  /** The places of the port in `slot` handed to this node since it last looked (taken: now its to use or give back). */
  takeHanded(slot: number): number {
    return this.self < this.nodeCount && Atomics.load(this.handedCounts, this.self * PORT_SLOTS + slot) !== 0
      ? Atomics.exchange(this.handedCounts, this.self * PORT_SLOTS + slot, 0) : 0;
  }

  /** Every node with senders blocked on the port in `slot` looks at them again. */
  #wakeAll(slot: number): void {
    if (Atomics.load(this.words, slot * WORDS + WAITING) === 0) return;
    for (let node = 0; node < this.nodeCount; node++) {
      if (Atomics.load(this.blockedFlags, node * PORT_SLOTS + slot) !== 0) this.#wake(node as NodeId);
    }
  }

  /**
   * This node has senders blocked on the port in `slot` (true), or no longer has (false). When
   * it stops waiting, returns the places handed to it meanwhile, for the caller to give back.
   */
  setBlocked(slot: number, blocked: boolean): number {
    if (this.self >= this.nodeCount) return 0;
    if (Atomics.exchange(this.blockedFlags, this.self * PORT_SLOTS + slot, blocked ? 1 : 0) !== (blocked ? 1 : 0)) {
      Atomics.add(this.words, slot * WORDS + WAITING, blocked ? 1 : -1);
    }
    return blocked ? 0 : this.takeHanded(slot);
  }

  /**
   * Dead node `node`'s blocked senders died with it: its flags are cleared and the nodes still
   * waiting on those slots look again. Returns the live ports whose places were handed to it,
   * once per place, for the caller to give back (NodeIpc.placeFreed).
   */
  dropBlocked(node: NodeId): PortId[] {
    const handed: PortId[] = [];
    if (node >= this.nodeCount) return handed;
    const used = Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const index = node * PORT_SLOTS + slot;
      if (Atomics.load(this.blockedFlags, index) === 0 && Atomics.load(this.handedCounts, index) === 0) continue;
      const port = (Atomics.load(this.words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      const count = Atomics.exchange(this.handedCounts, index, 0);
      if (this.isAlive(port)) for (let place = 0; place < count; place++) handed.push(port);
      if (Atomics.exchange(this.blockedFlags, index, 0) === 0) continue;
      Atomics.sub(this.words, slot * WORDS + WAITING, 1);
      this.#wakeAll(slot);
    }
    return handed;
  }

  /**
   * One more send right to `port` exists: held on this node, or with `held` false outside every
   * node (see the class comment), to be taken by a node with `sendRightsHeld`.
   */
  addSendRight(port: PortId, held = true): void {
    if (held) this.#countSend(port, this.self, 1);
    Atomics.add(this.words, this.at(port, SRIGHTS), 1);
  }

  /** One send right went (held here, or outside every node); true when it was the last (no-senders is due). */
  removeSendRight(port: PortId, held = true): boolean {
    if (held) this.#countSend(port, this.self, -1);
    return Atomics.sub(this.words, this.at(port, SRIGHTS), 1) === 1;
  }

  /** `delta` send rights to `port` came to this node from outside every node (or left it for there). */
  sendRightsHeld(port: PortId, delta: number): void {
    if (this.isAlive(port)) this.#countSend(port, this.self, delta);
  }

  /** A send right to `port` leaves this node for `to` (counted there before it is posted). */
  sendRightMoved(port: PortId, to: NodeId): void {
    if (!this.isAlive(port) || to >= this.nodeCount) return;
    this.#countSend(port, to, 1);
    this.#countSend(port, this.self, -1);
  }

  #countSend(port: PortId, node: NodeId, delta: number): void {
    if (node < this.nodeCount) Atomics.add(this.sendCounts, node * PORT_SLOTS + portSlot(port), delta);
  }

  /**
   * The send rights dead node `node` held, to live ports wherever they are, leave `srights`;
   * returns the ports left with none. Any survivor may sweep: each count is taken once.
   */
  takeSendRights(node: NodeId): PortId[] {
    const emptied: PortId[] = [];
    if (node >= this.nodeCount) return emptied;
    const used = Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const index = node * PORT_SLOTS + slot;
      if (Atomics.load(this.sendCounts, index) <= 0) continue;
      const port = (Atomics.load(this.words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (!this.isAlive(port)) continue;
      const count = Atomics.exchange(this.sendCounts, index, 0);
      if (count > 0 && Atomics.sub(this.words, slot * WORDS + SRIGHTS, count) === count) emptied.push(port);
    }
    return emptied;
  }

  /** How many send rights to `port` node `node` holds (tests and diagnostics). */
  sendRightCount(port: PortId, node: NodeId): number {
    return node < this.nodeCount && this.isAlive(port) ? Atomics.load(this.sendCounts, node * PORT_SLOTS + portSlot(port)) : 0;
  }

  sendRights(port: PortId): number { return Atomics.load(this.words, this.at(port, SRIGHTS)); }
}
