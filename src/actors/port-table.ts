/**
 * The kernel-wide port table: one SharedArrayBuffer every node holds, so any node learns where a
 * port lives, whether it is alive, and reserves a place in its queue with Atomics alone, with no
 * message and no directory (the part of Mach's `ipc_port` that NORMA must share across nodes).
 *
 *   slot 0:  | next never-used slot | (unused) ...                                   header
 *   slot s:  | generation | location | msgcount | qlimit | srights | kobject·kind | receiver | wake
 *
 * A PortId is `generation * PORT_SLOTS + slot`. A slot's generation advances when its port dies,
 * so a stale PortId never reaches the slot's next port. `location` is the node whose kernel
 * holds the port (its queue) or DEAD; `msgcount` counts queue places reserved by senders (queued
 * or still in flight), which is what blocks senders at the queue limit on every node.
 * `receiver` is the node whose name space last took the receive right: the queue belongs there,
 * and follows it. `wake` is an event count bumped whenever a blocked sender may now fit (a place
 * freed, the limit changed, the port died): senders wait on it, so no wakeup is lost between
 * finding the queue full and starting to wait.
 */
import {
  MACH_PORT_QLIMIT_DEFAULT, MACH_PORT_QLIMIT_MAX,
} from '../shared/constants.js';
import type { NodeId, TaskId } from '../shared/types.js';
import { makeTaskId } from '../shared/types.js';
import type { PortId } from './ipc-types.js';

export const PORT_SLOTS = 1 << 18;
const WORDS = 8;
const GENERATION = 0;
const LOCATION = 1;
const MSGCOUNT = 2;
const QLIMIT = 3;
const SRIGHTS = 4;
/** The kernel object's task sequence number times 4, plus the PortKind. */
const KOBJECT_KIND = 5;
const RECEIVER = 6;
const WAKE = 7;
export const PORT_TABLE_BYTES = PORT_SLOTS * WORDS * Int32Array.BYTES_PER_ELEMENT;

const DEAD = -1;
const NEXT_FREE_SLOT = 0;

/** What a port is: a plain port, a port set (never leaves its node), a task's or the host's kernel port. */
export const PortKind = { PORT: 0, PORT_SET: 1, TASK: 2, HOST: 3 } as const;
export type PortKind = (typeof PortKind)[keyof typeof PortKind];

export function portSlot(port: PortId): number { return port % PORT_SLOTS; }
function portGeneration(port: PortId): number { return Math.floor(port / PORT_SLOTS); }

export type Reservation = 'reserved' | 'full' | 'dead';

export class PortTable {
  readonly #words: Int32Array;
  readonly #node: NodeId;
  /** Slots this node freed, reused first: each node recycles its own without contention. */
  readonly #free: number[] = [];

  constructor(sab: SharedArrayBuffer, node: NodeId) {
    this.#words = new Int32Array(sab);
    this.#node = node;
  }

  static create(): SharedArrayBuffer {
    const sab = new SharedArrayBuffer(PORT_TABLE_BYTES);
    new Int32Array(sab)[NEXT_FREE_SLOT] = 1;
    return sab;
  }

  #at(port: PortId, word: number): number { return portSlot(port) * WORDS + word; }

  /** A new live port held at this node; undefined when the table is full. */
  allocate(kind: PortKind, kobject: TaskId | null = null): PortId | undefined {
    let slot = this.#free.pop();
    if (slot === undefined) {
      slot = Atomics.add(this.#words, NEXT_FREE_SLOT, 1);
      if (slot >= PORT_SLOTS) return undefined;
    }
    const base = slot * WORDS;
    const generation = Atomics.load(this.#words, base + GENERATION) + 1;
    Atomics.store(this.#words, base + MSGCOUNT, 0);
    Atomics.store(this.#words, base + QLIMIT, MACH_PORT_QLIMIT_DEFAULT);
    Atomics.store(this.#words, base + SRIGHTS, 0);
    Atomics.store(this.#words, base + KOBJECT_KIND, (kobject === null ? 0 : Math.floor(kobject / 1024)) * 4 + kind);
    Atomics.store(this.#words, base + RECEIVER, this.#node);
    Atomics.store(this.#words, base + LOCATION, this.#node);
    // Publish last: a reader that sees the new generation sees a fully set-up slot.
    Atomics.store(this.#words, base + GENERATION, generation);
    return (generation * PORT_SLOTS + slot) as PortId;
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

  /** The node whose name space last took the receive right: where the queue is headed. */
  receiver(port: PortId): NodeId { return Atomics.load(this.#words, this.#at(port, RECEIVER)) as NodeId; }

  /** A space on `node` took the receive right: the queue belongs there from now on. */
  setReceiver(port: PortId, node: NodeId): void { Atomics.store(this.#words, this.#at(port, RECEIVER), node); }

  kind(port: PortId): PortKind { return (Atomics.load(this.#words, this.#at(port, KOBJECT_KIND)) & 3) as PortKind; }

  /** The task whose kernel port this is (task ports never move: their node is the task's). */
  taskOf(port: PortId): TaskId | undefined {
    if (this.kind(port) !== PortKind.TASK || !this.isAlive(port)) return undefined;
    const node = Atomics.load(this.#words, this.#at(port, LOCATION)) as NodeId;
    return makeTaskId(node, Atomics.load(this.#words, this.#at(port, KOBJECT_KIND)) >>> 2);
  }

  /**
   * The port dies: senders reading the table see it dead from now on, and those waiting for a
   * queue place are woken to find out. The slot returns to this node's free list.
   */
  kill(port: PortId): void {
    const slot = portSlot(port);
    Atomics.store(this.#words, slot * WORDS + LOCATION, DEAD);
    Atomics.add(this.#words, slot * WORDS + GENERATION, 1);
    this.#wake(slot * WORDS + WAKE);
    this.#free.push(slot);
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
    const result = Atomics.waitAsync(this.#words, this.#at(port, WAKE), observed,
      timeoutMs === Infinity ? undefined : timeoutMs);
    const outcome = result.async ? await result.value : result.value;
    return outcome !== 'timed-out';
  }

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

  /** One more send right to `port` exists somewhere. */
  addSendRight(port: PortId): void { Atomics.add(this.#words, this.#at(port, SRIGHTS), 1); }

  /** One send right went; true when it was the last (no-senders is due at the port's node). */
  removeSendRight(port: PortId): boolean {
    return Atomics.sub(this.#words, this.#at(port, SRIGHTS), 1) === 1;
  }

  sendRights(port: PortId): number { return Atomics.load(this.#words, this.#at(port, SRIGHTS)); }
}
