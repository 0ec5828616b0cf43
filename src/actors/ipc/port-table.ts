/**
 * The kernel-wide port table: one SharedArrayBuffer every node holds, so any node learns where a
 * port lives, whether it is alive, and reserves a place in its queue with Atomics alone, with no
 * message and no directory (the part of Mach's `ipc_port` that NORMA must share across nodes).
 *
 *   slots (WORDS Int32 each; slot 0 is the header):
 *     slot 0:  | next never-used slot | (unused) | free-list head (BigInt64: tag << 18 | slot) | ...
 *     slot s:  | generation | location | msgcount | qlimit | srights | kobject·kind | receiver | wake
 *   links:     | next free slot of slot 0 | of slot 1 | ...                (PORT_SLOTS Int32)
 *   send-once: | node 0: rights to slot 0 | slot 1 | ... | node 1: ...     (nodes × PORT_SLOTS Int32)
 *   send:      | node 0: rights to slot 0 | slot 1 | ... | node 1: ...     (nodes × PORT_SLOTS Int32)
 *
 * A PortId is `generation * PORT_SLOTS + slot`. A slot's generation advances when its port dies,
 * so a stale PortId never reaches the slot's next port. `location` is the node whose kernel
 * holds the port (its queue) or DEAD; `msgcount` counts queue places reserved by senders (queued
 * or still in flight), which is what blocks senders at the queue limit on every node.
 * `receiver` is the node whose name space last took the receive right, or, while the right
 * travels in a message, the node that message is on or headed to (NodeIpc.departing): the
 * queue belongs there, and follows it; a node that dies there takes the right with it. `wake` is an event count bumped whenever a blocked sender may now fit (a place
 * freed, the limit changed, the port died): senders wait on it, so no wakeup is lost between
 * finding the queue full and starting to wait.
 *
 * Slots are one pool for every node: a dead port's slot goes on a lock-free stack (Treiber's),
 * whichever node killed it, and any node pops it. The head carries a tag bumped by every push
 * and pop, so a pop that read the head, slept while others popped and pushed the same slot back,
 * cannot install a stale `next` (the ABA problem); 64 bits leave 46 for the tag, which never
 * wraps in practice (a 32-bit head would leave 14, which a node descheduled for a few ms under
 * port churn can see wrap). Before this pool each node kept the slots it freed, so ports made
 * on node 0 and killed on node 1 drained node 0's share: after 262,143 of them node 0 could make
 * no port with none alive. *Measured* (2-core VM, Node 20, steady state): a tagged BigInt
 * compare-exchange costs about 90 ns against 18 ns for an Int32 one; an allocate + kill pair
 * about 500 ns against 250 ns with the private lists, well under a mach_port_allocate call.
 * A survivor's sweeps after a node dies read every slot ever used, 10-30 ms for a full table.
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
import { MACH_PORT_QLIMIT_DEFAULT, MACH_PORT_QLIMIT_MAX } from '../../shared/constants.js';
import { MAX_NODES, makeTaskId, type NodeId, type TaskId, type PortId } from '../../shared/types.js';

export const PORT_SLOTS = 1 << 18;
const SLOT_BITS = 18n;
const SLOT_MASK = (1n << SLOT_BITS) - 1n;
const WORDS = 8;
const GENERATION = 0;
const LOCATION = 1;
const MSGCOUNT = 2;
const QLIMIT = 3;
const SRIGHTS = 4;
/** The kernel object's sequence number << 3 | PortKind (THREAD made 5 kinds; 2^28 objects a node fit). */
const KOBJECT_KIND = 5;
const RECEIVER = 6;
const WAKE = 7;
const SLOTS_BYTES = PORT_SLOTS * WORDS * Int32Array.BYTES_PER_ELEMENT;
const LINKS_BYTES = PORT_SLOTS * Int32Array.BYTES_PER_ELEMENT;

/** Bytes of the table for `nodes` nodes: slots, free links, a send-once and a send count per node and slot. */
export function portTableBytes(nodes: number): number {
  return SLOTS_BYTES + LINKS_BYTES + 2 * nodes * PORT_SLOTS * Int32Array.BYTES_PER_ELEMENT;
}

const DEAD = -1;
const NEXT_NEW_SLOT = 0;
/** Byte offset of the free-list head, a BigInt64 in the header slot. */
const FREE_HEAD_BYTE = 8;

/** A plain port, a port set, a task's, the host's or a thread's kernel port, or a kernel-received reply port (kern/kobject.ts). */
export const PortKind = { PORT: 0, PORT_SET: 1, TASK: 2, HOST: 3, THREAD: 4, KERNEL_REPLY: 5 } as const;
const KIND_BITS = 3, KIND_MASK = (1 << KIND_BITS) - 1;
export type PortKind = (typeof PortKind)[keyof typeof PortKind];

export function portSlot(port: PortId): number { return port % PORT_SLOTS; }
function portGeneration(port: PortId): number { return Math.floor(port / PORT_SLOTS); }

export type Reservation = 'reserved' | 'full' | 'dead';

export class PortTable {
  readonly #words: Int32Array;
  readonly #head: BigInt64Array;
  readonly #links: Int32Array;
  readonly #sendOnce: Int32Array;
  readonly #send: Int32Array;
  readonly #nodes: number;
  readonly #node: NodeId;

  /** A view of the table for `node` (the host may take one too: it allocates nothing). */
  constructor(sab: SharedArrayBuffer, node: NodeId) {
    this.#words = new Int32Array(sab, 0, PORT_SLOTS * WORDS);
    this.#head = new BigInt64Array(sab, FREE_HEAD_BYTE, 1);
    this.#links = new Int32Array(sab, SLOTS_BYTES, PORT_SLOTS);
    this.#nodes = Math.floor((sab.byteLength - SLOTS_BYTES - LINKS_BYTES) / (2 * LINKS_BYTES));
    this.#sendOnce = new Int32Array(sab, SLOTS_BYTES + LINKS_BYTES, this.#nodes * PORT_SLOTS);
    this.#send = new Int32Array(sab, SLOTS_BYTES + LINKS_BYTES + this.#nodes * LINKS_BYTES, this.#nodes * PORT_SLOTS);
    this.#node = node;
  }

  /** A new, empty table for a kernel of `nodes` nodes. */
  static create(nodes = 1): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(portTableBytes(nodes));
    new Int32Array(sab)[NEXT_NEW_SLOT] = 1;
    return sab;
  }

  #at(port: PortId, word: number): number { return portSlot(port) * WORDS + word; }

  /**
   * A new live port held at this node; undefined when every slot holds a live port (the callers
   * answer KERN_RESOURCE_SHORTAGE). Freed slots come first, from any node; then never-used ones.
   */
  allocate(kind: PortKind, kobject: number | null = null): PortId | undefined {
    const slot = this.#pop() ?? this.#fresh();
    if (slot === undefined) return undefined;
    const base = slot * WORDS;
    const generation = Atomics.load(this.#words, base + GENERATION) + 1;
    Atomics.store(this.#words, base + MSGCOUNT, 0);
    Atomics.store(this.#words, base + QLIMIT, MACH_PORT_QLIMIT_DEFAULT);
    Atomics.store(this.#words, base + SRIGHTS, 0);
    Atomics.store(this.#words, base + KOBJECT_KIND, ((kobject === null ? 0 : Math.floor(kobject / MAX_NODES)) << KIND_BITS) | kind);
    Atomics.store(this.#words, base + RECEIVER, this.#node);
    for (let node = 0; node < this.#nodes; node++) {
      Atomics.store(this.#sendOnce, node * PORT_SLOTS + slot, 0);
      Atomics.store(this.#send, node * PORT_SLOTS + slot, 0);
    }
    Atomics.store(this.#words, base + LOCATION, this.#node);
    // Publish last: a reader that sees the new generation sees a fully set-up slot.
    Atomics.store(this.#words, base + GENERATION, generation);
    return (generation * PORT_SLOTS + slot) as PortId;
  }

  /** A never-used slot, or undefined when all have been handed out (the counter stops there). */
  #fresh(): number | undefined {
    for (;;) {
      const next = Atomics.load(this.#words, NEXT_NEW_SLOT);
      if (next >= PORT_SLOTS) return undefined;
      if (Atomics.compareExchange(this.#words, NEXT_NEW_SLOT, next, next + 1) === next) return next;
    }
  }

  /** Pops a freed slot (slot 0, the header, marks the empty stack). */
  #pop(): number | undefined {
    for (;;) {
      const head = Atomics.load(this.#head, 0);
      const slot = Number(head & SLOT_MASK);
      if (slot === 0) return undefined;
      // Possibly stale if another node pops `slot` meanwhile; the tag then fails the exchange.
      const next = BigInt(Atomics.load(this.#links, slot));
      const tag = (head >> SLOT_BITS) + 1n;
      if (Atomics.compareExchange(this.#head, 0, head, (tag << SLOT_BITS) | next) === head) return slot;
    }
  }

  #push(slot: number): void {
    for (;;) {
      const head = Atomics.load(this.#head, 0);
      Atomics.store(this.#links, slot, Number(head & SLOT_MASK));
      const tag = (head >> SLOT_BITS) + 1n;
      if (Atomics.compareExchange(this.#head, 0, head, (tag << SLOT_BITS) | BigInt(slot)) === head) return;
    }
  }

  /** How many ports could still be made: freed slots plus never-used ones (a snapshot). */
  available(): number {
    let free = 0;
    for (let slot = Number(Atomics.load(this.#head, 0) & SLOT_MASK); slot !== 0 && free < PORT_SLOTS;
      slot = Atomics.load(this.#links, slot)) free++;
    return free + PORT_SLOTS - Math.min(PORT_SLOTS, Atomics.load(this.#words, NEXT_NEW_SLOT));
  }

  /** True while `port` names the live port in its slot. */
  isAlive(port: PortId): boolean {
    return Atomics.load(this.#words, this.#at(port, GENERATION)) === portGeneration(port) &&
      Atomics.load(this.#words, this.#at(port, LOCATION)) !== DEAD;
  }

  /** The node holding the port, or undefined when it is dead. */
  location(port: PortId): NodeId | undefined {
    if (!this.isAlive(port)) return undefined;
    const node = Atomics.load(this.#words, this.#at(port, LOCATION));
    return node === DEAD ? undefined : node as NodeId;
  }

  moveTo(port: PortId, node: NodeId): void {
    Atomics.store(this.#words, this.#at(port, LOCATION), node);
  }

  /** The node whose name space last took the receive right, or holding the message carrying it. */
  receiver(port: PortId): NodeId { return Atomics.load(this.#words, this.#at(port, RECEIVER)) as NodeId; }

  /** A space on `node` took the receive right: the queue belongs there from now on. */
  setReceiver(port: PortId, node: NodeId): void { Atomics.store(this.#words, this.#at(port, RECEIVER), node); }

  kind(port: PortId): PortKind { return (Atomics.load(this.#words, this.#at(port, KOBJECT_KIND)) & KIND_MASK) as PortKind; }

  /** The task whose kernel port this is (task ports never move: their node is the task's). */
  taskOf(port: PortId): TaskId | undefined { return this.kobjectOf(port, PortKind.TASK) as TaskId | undefined; }
  /** The live `port`'s task or thread id (makeTaskId-shaped; those kernel ports never move). */
  kobjectOf(port: PortId, kind: PortKind): number | undefined {
    if (this.kind(port) !== kind || !this.isAlive(port)) return undefined;
    const node = Atomics.load(this.#words, this.#at(port, LOCATION)) as NodeId;
    return makeTaskId(node, Atomics.load(this.#words, this.#at(port, KOBJECT_KIND)) >>> KIND_BITS);
  }

  /**
   * The port dies: senders reading the table see it dead from now on, and those waiting for a
   * queue place are woken to find out; the slot goes back to the pool every node draws from.
   * Exactly once: of two nodes killing one port (its holder, and a survivor sweeping up after a
   * dead node), only the one that advances the generation frees the slot. Returns whether this
   * call killed it.
   */
  kill(port: PortId): boolean {
    const slot = portSlot(port);
    const generation = portGeneration(port);
    if (Atomics.compareExchange(this.#words, slot * WORDS + GENERATION, generation, generation + 1) !== generation) {
      return false;
    }
    Atomics.store(this.#words, slot * WORDS + LOCATION, DEAD);
    this.#wake(slot * WORDS + WAKE);
    this.#push(slot);
    return true;
  }

  /**
   * Node `node` died: kills every port whose queue was there (or on its way there), waking
   * their blocked senders, and returns them. Any node may sweep, any number of times; each port
   * dies once. A slot `node` was setting up when it died (location written, generation not yet)
   * is freed too.
   */
  killNode(node: NodeId): PortId[] {
    const killed: PortId[] = [];
    const used = Math.min(PORT_SLOTS, Atomics.load(this.#words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      if (Atomics.load(this.#words, slot * WORDS + LOCATION) !== node) continue;
      const port = (Atomics.load(this.#words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (this.kill(port)) killed.push(port);
    }
    return killed;
  }

  /** The live ports located at `node` whose receive right was last taken on `receiver`. */
  portsReceivedOn(receiver: NodeId, node: NodeId = this.#node): PortId[] {
    const ports: PortId[] = [];
    const used = Math.min(PORT_SLOTS, Atomics.load(this.#words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const base = slot * WORDS;
      if (Atomics.load(this.#words, base + RECEIVER) !== receiver || Atomics.load(this.#words, base + LOCATION) !== node) continue;
      const port = (Atomics.load(this.#words, base + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (this.isAlive(port)) ports.push(port);
    }
    return ports;
  }

  /** A send-once right to `port` was made on this node. */
  sendOnceMade(port: PortId): void { this.#countSendOnce(port, this.#node, 1); }

  /** A send-once right to `port` leaves this node for `to` (counted there before it is posted). */
  sendOnceMoved(port: PortId, to: NodeId): void {
    if (!this.isAlive(port)) return;
    this.#countSendOnce(port, to, 1);
    this.#countSendOnce(port, this.#node, -1);
  }

  /** A send-once right to `port` held here was used up: its message reached the port's node. */
  sendOnceUsed(port: PortId): void { this.#countSendOnce(port, this.#node, -1); }

  /** Counts only for live ports: a slot's counts restart at 0 when it gets its next port. */
  #countSendOnce(port: PortId, node: NodeId, delta: 1 | -1): void {
    if (node < this.#nodes && this.isAlive(port)) Atomics.add(this.#sendOnce, node * PORT_SLOTS + portSlot(port), delta);
  }

  /**
   * The send-once rights dead node `node` held to live ports located here, each port with how
   * many: taken over by this node (its count rises by as many, and falls again as each
   * notification is sent), so a second sweep finds none.
   */
  takeSendOnces(node: NodeId): Array<readonly [PortId, number]> {
    const taken: Array<readonly [PortId, number]> = [];
    if (node >= this.#nodes) return taken;
    const used = Math.min(PORT_SLOTS, Atomics.load(this.#words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const index = node * PORT_SLOTS + slot;
      if (Atomics.load(this.#sendOnce, index) <= 0 || Atomics.load(this.#words, slot * WORDS + LOCATION) !== this.#node) continue;
      const port = (Atomics.load(this.#words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (!this.isAlive(port)) continue;
      const count = Atomics.exchange(this.#sendOnce, index, 0);
      if (count <= 0) continue;
      if (this.#node < this.#nodes) Atomics.add(this.#sendOnce, this.#node * PORT_SLOTS + slot, count);
      taken.push([port, count]);
    }
    return taken;
  }

  /** How many send-once rights to `port` node `node` holds (tests and diagnostics). */
  sendOnceCount(port: PortId, node: NodeId): number {
    return node < this.#nodes && this.isAlive(port) ? Atomics.load(this.#sendOnce, node * PORT_SLOTS + portSlot(port)) : 0;
  }

  qlimit(port: PortId): number { return Atomics.load(this.#words, this.#at(port, QLIMIT)); }

  /** Sets the queue limit and wakes waiting senders, who may now fit. */
  setQlimit(port: PortId, qlimit: number): void {
    Atomics.store(this.#words, this.#at(port, QLIMIT), Math.min(qlimit, MACH_PORT_QLIMIT_MAX));
    this.#wake(this.#at(port, WAKE));
  }

  msgcount(port: PortId): number { return Atomics.load(this.#words, this.#at(port, MSGCOUNT)); }

  /**
   * Takes a queue place if one is free. A limit of 0 still admits one message at a time, since
   * a place is taken before the message reaches the port's node (no rendezvous across nodes).
   */
  reserve(port: PortId): Reservation {
    const index = this.#at(port, MSGCOUNT);
    for (;;) {
      if (!this.isAlive(port)) return 'dead';
      const count = Atomics.load(this.#words, index);
      if (count >= Math.max(1, this.qlimit(port))) return 'full';
      if (Atomics.compareExchange(this.#words, index, count, count + 1) === count) return 'reserved';
    }
  }

  /**
   * The port's wake count, read before trying `reserve`: `waitForPlace` with it cannot miss a
   * place freed (or a limit raised, or a death) after the read.
   */
  wakeCount(port: PortId): number { return Atomics.load(this.#words, this.#at(port, WAKE)); }

  /**
   * Waits until the wake count differs from `observed` (read before a `reserve` that found the
   * queue full) or `timeoutMs` passes, without blocking the event loop. Resolves true if it
   * changed (the caller tries to reserve again).
   */
  async waitForPlace(port: PortId, observed: number, timeoutMs: number): Promise<boolean> {
    const result = Atomics.waitAsync(this.#words, this.#at(port, WAKE), observed, timeoutMs === Infinity ? undefined : timeoutMs);
    return (result.async ? await result.value : result.value) !== 'timed-out';
  }

  /** Wakes waiting senders, no place freed: one whose deadline (clock.ts) passed leaves the wait. */
  wakeWaiters(port: PortId): void { Atomics.notify(this.#words, this.#at(port, WAKE)); }

  /**
   * A reserved place is given back (the message was dequeued, or never sent). Every waiting
   * sender is woken: one that no longer wants the place must not swallow the only wakeup.
   */
  unreserve(port: PortId): void {
    Atomics.sub(this.#words, this.#at(port, MSGCOUNT), 1);
    this.#wake(this.#at(port, WAKE));
  }

  #wake(index: number): void {
    Atomics.add(this.#words, index, 1);
    Atomics.notify(this.#words, index);
  }

  /**
   * One more send right to `port` exists: held on this node, or with `held` false outside every
   * node (see the class comment), to be taken by a node with `sendRightsHeld`.
   */
  addSendRight(port: PortId, held = true): void {
    if (held) this.#countSend(port, this.#node, 1);
    Atomics.add(this.#words, this.#at(port, SRIGHTS), 1);
  }

  /** One send right went (held here, or outside every node); true when it was the last (no-senders is due). */
  removeSendRight(port: PortId, held = true): boolean {
    if (held) this.#countSend(port, this.#node, -1);
    return Atomics.sub(this.#words, this.#at(port, SRIGHTS), 1) === 1;
  }

  /** `delta` send rights to `port` came to this node from outside every node (or left it for there). */
  sendRightsHeld(port: PortId, delta: number): void {
    if (this.isAlive(port)) this.#countSend(port, this.#node, delta);
  }

  /** A send right to `port` leaves this node for `to` (counted there before it is posted). */
  sendRightMoved(port: PortId, to: NodeId): void {
    if (!this.isAlive(port) || to >= this.#nodes) return;
    this.#countSend(port, to, 1);
    this.#countSend(port, this.#node, -1);
  }

  #countSend(port: PortId, node: NodeId, delta: number): void {
    if (node < this.#nodes) Atomics.add(this.#send, node * PORT_SLOTS + portSlot(port), delta);
  }

  /**
   * The send rights dead node `node` held, to live ports wherever they are, leave `srights`;
   * returns the ports left with none. Any survivor may sweep: each count is taken once.
   */
  takeSendRights(node: NodeId): PortId[] {
    const emptied: PortId[] = [];
    if (node >= this.#nodes) return emptied;
    const used = Math.min(PORT_SLOTS, Atomics.load(this.#words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const index = node * PORT_SLOTS + slot;
      if (Atomics.load(this.#send, index) <= 0) continue;
      const port = (Atomics.load(this.#words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (!this.isAlive(port)) continue;
      const count = Atomics.exchange(this.#send, index, 0);
      if (count > 0 && Atomics.sub(this.#words, slot * WORDS + SRIGHTS, count) === count) emptied.push(port);
    }
    return emptied;
  }

  /** How many send rights to `port` node `node` holds (tests and diagnostics). */
  sendRightCount(port: PortId, node: NodeId): number {
    return node < this.#nodes && this.isAlive(port) ? Atomics.load(this.#send, node * PORT_SLOTS + portSlot(port)) : 0;
  }

  sendRights(port: PortId): number { return Atomics.load(this.#words, this.#at(port, SRIGHTS)); }
}
