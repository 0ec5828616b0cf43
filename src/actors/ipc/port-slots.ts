/**
 * The kernel-wide port table's slots (port-table.ts adds the counts and queue places): one
 * SharedArrayBuffer every node holds, so any node learns where a port lives and whether it is
 * alive with Atomics alone, with no message and no directory (the part of Mach's `ipc_port`
 * that NORMA must share across nodes). Its layout:
 *
 *   slots (WORDS Int32 each; slot 0 is the header):
 *     slot 0:  | next never-used slot | (unused) | free-list head (BigInt64: tag << 18 | slot) | ...
 *     slot s:  | generation | location | msgcount | qlimit | srights | kobject·kind | receiver | waiting | handed
 *   links:     | next free slot of slot 0 | of slot 1 | ...                (PORT_SLOTS Int32)
 *   send-once: | node 0: rights to slot 0 | slot 1 | ... | node 1: ...     (nodes × PORT_SLOTS Int32)
 *   send:      | node 0: rights to slot 0 | slot 1 | ... | node 1: ...     (nodes × PORT_SLOTS Int32)
 *   handed:    | node 0: places handed to it for slot 0 | slot 1 | ... | node 1: ... (nodes × PORT_SLOTS Int32)
 *   blocked:   | node 0: senders wait on slot 0 | slot 1 | ... | node 1: ... (nodes × PORT_SLOTS Int8)
 *
 * A PortId is `generation * PORT_SLOTS + slot`. A slot's generation advances when its port dies,
 * so a stale PortId never reaches the slot's next port. `location` is the node whose kernel
 * holds the port (its queue) or DEAD; `msgcount` counts queue places reserved by senders (queued
 * or still in flight), which is what blocks senders at the queue limit on every node.
 * `receiver` is the node whose name space last took the receive right, or, while the right
 * travels in a message, the node that message is on or headed to (NodeIpc.departing): the
 * queue belongs there, and follows it; a node that dies there takes the right with it.
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
 */
import { MACH_PORT_QLIMIT_DEFAULT } from '../../shared/constants.js';
import { MAX_NODES, makeTaskId, type NodeId, type TaskId, type PortId } from '../../shared/types.js';

export const PORT_SLOTS = 1 << 18;
const SLOT_BITS = 18n;
const SLOT_MASK = (1n << SLOT_BITS) - 1n;
export const WORDS = 9;
export const GENERATION = 0;
export const LOCATION = 1;
export const MSGCOUNT = 2;
export const QLIMIT = 3;
export const SRIGHTS = 4;
/** The kernel object's sequence number << 3 | PortKind (THREAD made 5 kinds; 2^28 objects a node fit). */
const KOBJECT_KIND = 5;
const RECEIVER = 6;
export const WAITING = 7;
/** Queue places handed to blocked senders and not yet used or given back (port-table.ts). */
export const HANDED = 8;
const SLOTS_BYTES = PORT_SLOTS * WORDS * Int32Array.BYTES_PER_ELEMENT;
const LINKS_BYTES = PORT_SLOTS * Int32Array.BYTES_PER_ELEMENT;

/** Bytes of the table for `nodes` nodes: slots, free links, and per node and slot a send-once, a send and a handed count and a blocked flag. */
export function portTableBytes(nodes: number): number {
  return SLOTS_BYTES + LINKS_BYTES + nodes * (3 * LINKS_BYTES + PORT_SLOTS);
}

const DEAD = -1;
export const NEXT_NEW_SLOT = 0;
/** Byte offset of the free-list head, a BigInt64 in the header slot. */
const FREE_HEAD_BYTE = 8;

/** A plain port, a port set, a task's, the host's or a thread's kernel port, or a kernel-received reply port (kern/kobject.ts). */
export const PortKind = { PORT: 0, PORT_SET: 1, TASK: 2, HOST: 3, THREAD: 4, KERNEL_REPLY: 5 } as const;
const KIND_BITS = 3, KIND_MASK = (1 << KIND_BITS) - 1;
export type PortKind = (typeof PortKind)[keyof typeof PortKind];

export function portSlot(port: PortId): number { return port % PORT_SLOTS; }
export function portGeneration(port: PortId): number { return Math.floor(port / PORT_SLOTS); }


export class PortSlots {
  protected readonly words: Int32Array;
  readonly #head: BigInt64Array;
  readonly #links: Int32Array;
  /** Per node and slot: send-once rights held, send rights held, places handed, senders blocked (port-table.ts). */
  protected readonly sendOnceCounts: Int32Array;
  protected readonly sendCounts: Int32Array;
  protected readonly handedCounts: Int32Array;
  protected readonly blockedFlags: Int8Array;
  protected readonly nodeCount: number;
  protected readonly self: NodeId;

  /** A view of the table for `node` (the host may take one too: it allocates nothing). */
  constructor(sab: SharedArrayBuffer, node: NodeId) {
    this.words = new Int32Array(sab, 0, PORT_SLOTS * WORDS);
    this.#head = new BigInt64Array(sab, FREE_HEAD_BYTE, 1);
    this.#links = new Int32Array(sab, SLOTS_BYTES, PORT_SLOTS);
    this.nodeCount = Math.floor((sab.byteLength - SLOTS_BYTES - LINKS_BYTES) / (3 * LINKS_BYTES + PORT_SLOTS));
    this.sendOnceCounts = new Int32Array(sab, SLOTS_BYTES + LINKS_BYTES, this.nodeCount * PORT_SLOTS);
    this.sendCounts = new Int32Array(sab, SLOTS_BYTES + LINKS_BYTES + this.nodeCount * LINKS_BYTES, this.nodeCount * PORT_SLOTS);
    this.handedCounts = new Int32Array(sab, SLOTS_BYTES + LINKS_BYTES + 2 * this.nodeCount * LINKS_BYTES, this.nodeCount * PORT_SLOTS);
    this.blockedFlags = new Int8Array(sab, SLOTS_BYTES + LINKS_BYTES + 3 * this.nodeCount * LINKS_BYTES, this.nodeCount * PORT_SLOTS);
    this.self = node;
  }

  /** A new, empty table for a kernel of `nodes` nodes. */
  static create(nodes = 1): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(portTableBytes(nodes));
    new Int32Array(sab)[NEXT_NEW_SLOT] = 1;
    return sab;
  }

  protected at(port: PortId, word: number): number { return portSlot(port) * WORDS + word; }

  /**
   * A new live port held at this node; undefined when every slot holds a live port (the callers
   * answer KERN_RESOURCE_SHORTAGE). Freed slots come first, from any node; then never-used ones.
   */
  allocate(kind: PortKind, kobject: number | null = null): PortId | undefined {
    const slot = this.#pop() ?? this.#fresh();
    if (slot === undefined) return undefined;
    const base = slot * WORDS;
    const generation = Atomics.load(this.words, base + GENERATION) + 1;
    Atomics.store(this.words, base + MSGCOUNT, 0);
    Atomics.store(this.words, base + QLIMIT, MACH_PORT_QLIMIT_DEFAULT);
    Atomics.store(this.words, base + SRIGHTS, 0);
    Atomics.store(this.words, base + KOBJECT_KIND, ((kobject === null ? 0 : Math.floor(kobject / MAX_NODES)) << KIND_BITS) | kind);
    Atomics.store(this.words, base + RECEIVER, this.self);
    Atomics.store(this.words, base + HANDED, 0);
    for (let node = 0; node < this.nodeCount; node++) {
      Atomics.store(this.sendOnceCounts, node * PORT_SLOTS + slot, 0);
      Atomics.store(this.sendCounts, node * PORT_SLOTS + slot, 0);
      Atomics.store(this.handedCounts, node * PORT_SLOTS + slot, 0);
    }
    Atomics.store(this.words, base + LOCATION, this.self);
    // Publish last: a reader that sees the new generation sees a fully set-up slot.
    Atomics.store(this.words, base + GENERATION, generation);
    return (generation * PORT_SLOTS + slot) as PortId;
  }

  /** A never-used slot, or undefined when all have been handed out (the counter stops there). */
  #fresh(): number | undefined {
    for (;;) {
      const next = Atomics.load(this.words, NEXT_NEW_SLOT);
      if (next >= PORT_SLOTS) return undefined;
      if (Atomics.compareExchange(this.words, NEXT_NEW_SLOT, next, next + 1) === next) return next;
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
    return free + PORT_SLOTS - Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
  }

  /** The live port in `slot`, if any. */
  portInSlot(slot: number): PortId | undefined {
    const port = (Atomics.load(this.words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
    return this.isAlive(port) ? port : undefined;
  }

  /** True while `port` names the live port in its slot. */
  isAlive(port: PortId): boolean {
    return Atomics.load(this.words, this.at(port, GENERATION)) === portGeneration(port) &&
      Atomics.load(this.words, this.at(port, LOCATION)) !== DEAD;
  }

  /** The node holding the port, or undefined when it is dead. */
  location(port: PortId): NodeId | undefined {
    if (!this.isAlive(port)) return undefined;
    const node = Atomics.load(this.words, this.at(port, LOCATION));
    return node === DEAD ? undefined : node as NodeId;
  }

  moveTo(port: PortId, node: NodeId): void {
    Atomics.store(this.words, this.at(port, LOCATION), node);
  }

  /** The node whose name space last took the receive right, or holding the message carrying it. */
  receiver(port: PortId): NodeId { return Atomics.load(this.words, this.at(port, RECEIVER)) as NodeId; }

  /** A space on `node` took the receive right: the queue belongs there from now on. */
  setReceiver(port: PortId, node: NodeId): void { Atomics.store(this.words, this.at(port, RECEIVER), node); }

  kind(port: PortId): PortKind { return (Atomics.load(this.words, this.at(port, KOBJECT_KIND)) & KIND_MASK) as PortKind; }

  /** The task whose kernel port this is (task ports never move: their node is the task's). */
  taskOf(port: PortId): TaskId | undefined { return this.kobjectOf(port, PortKind.TASK) as TaskId | undefined; }
  /** The live `port`'s task or thread id (makeTaskId-shaped; those kernel ports never move). */
  kobjectOf(port: PortId, kind: PortKind): number | undefined {
    if (this.kind(port) !== kind || !this.isAlive(port)) return undefined;
    const node = Atomics.load(this.words, this.at(port, LOCATION)) as NodeId;
    return makeTaskId(node, Atomics.load(this.words, this.at(port, KOBJECT_KIND)) >>> KIND_BITS);
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
    if (Atomics.compareExchange(this.words, slot * WORDS + GENERATION, generation, generation + 1) !== generation) {
      return false;
    }
    Atomics.store(this.words, slot * WORDS + LOCATION, DEAD);
    this.portKilled(slot);
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
    const used = Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      if (Atomics.load(this.words, slot * WORDS + LOCATION) !== node) continue;
      const port = (Atomics.load(this.words, slot * WORDS + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (this.kill(port)) killed.push(port);
    }
    return killed;
  }

  /** The live ports located at `node` whose receive right was last taken on `receiver`. */
  portsReceivedOn(receiver: NodeId, node: NodeId = this.self): PortId[] {
    const ports: PortId[] = [];
    const used = Math.min(PORT_SLOTS, Atomics.load(this.words, NEXT_NEW_SLOT));
    for (let slot = 1; slot < used; slot++) {
      const base = slot * WORDS;
      if (Atomics.load(this.words, base + RECEIVER) !== receiver || Atomics.load(this.words, base + LOCATION) !== node) continue;
      const port = (Atomics.load(this.words, base + GENERATION) * PORT_SLOTS + slot) as PortId;
      if (this.isAlive(port)) ports.push(port);
    }
    return ports;
  }

  /** The port in `slot` just died, before its slot can be reused (PortTable wakes its blocked senders). */
  protected portKilled(_slot: number): void {}
}
