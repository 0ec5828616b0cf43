/**
 * A port whose queue lives on this node (the node-local half of Mach's `ipc_port`: its message
 * queue and the state that travels with the queue when the receive right moves), and what a
 * node keeps for a port whose queue is on its way here.
 */
import { ok as assert } from 'node:assert/strict';
import type { NoSendersRequest } from '../../shared/protocol.js';
import type { KMsg } from '../../shared/message.js';
import type { NodeId, TaskId, PortId } from '../../shared/types.js';
import type { Clock } from './clock.js';
import { Port, type PortSet } from './port.js';
import type { PortTable } from './port-table.js';

/** The least size of LocalPort.expected worth pruning. */
export const PRUNE_MIN = 64;

/** A port whose queue lives on this node. */
export class LocalPort {
  readonly id: PortId;
  readonly queue: Port<KMsg>;
  /**
   * Next sequence number expected from each sender (by its task port), and messages that came
   * early. A dead sender's entry goes once nothing of it can still arrive (NodeIpc.#prune).
   */
  readonly expected = new Map<number, number>();
  readonly held = new Map<number, Map<number, KMsg>>();
  /** `expected` is pruned when it reaches this size (then twice its pruned size). */
  pruneAt = PRUNE_MIN;
  nsrequest: NoSendersRequest | null = null;
  pdrequest: PortId | null = null;
  /** Dead-name requests by `node:task`, counted: who must hear of this port's death. */
  readonly dnrequests = new Map<string, number>();

  constructor(id: PortId, clock: Clock) {
    this.id = id;
    // No queue limit here: senders reserve their places in the port table (port-table.ts).
    this.queue = new Port<KMsg>({ clock });
  }

  /**
   * Queues in per-sender order. Messages of one sender can overtake each other only when the
   * port migrates (some go by its old node); each carries its sender's sequence number, and an
   * early one waits until those before it have come.
   */
  accept(kmsg: KMsg, table: PortTable): void {
    if (kmsg.sendOnce || kmsg.sender === 0) {
      this.queue.send(kmsg);
      return;
    }
    const expected = this.expected.get(kmsg.sender) ?? 1;
    if (kmsg.seq !== expected) {
      assert(kmsg.seq > expected, `message ${kmsg.seq} from task ${kmsg.sender} arrived twice`);
      let held = this.held.get(kmsg.sender);
      if (held === undefined) this.held.set(kmsg.sender, held = new Map());
      held.set(kmsg.seq, kmsg);
      return;
    }
    this.queue.send(kmsg);
    let next = expected + 1;
    const held = this.held.get(kmsg.sender);
    for (let early = held?.get(next); early !== undefined; early = held!.get(next)) {
      held!.delete(next);
      this.queue.send(early);
      next++;
    }
    if (held?.size === 0) this.held.delete(kmsg.sender);
    this.expected.set(kmsg.sender, next);
    this.prune(table);
  }

  /**
   * Drops the order state of senders whose task died, when `expected` has grown to its pruning
   * size (or `always`). Safe only while no ordered message of the port is anywhere but its queue
   * here: each holds a queue place in the table from send to dequeue, so a table count (less the
   * places handed to blocked senders, which hold no message yet) equal to the ordered messages
   * queued here means none is held or on its way, and a dead task sends no more. Otherwise it is tried again on the next dequeue or new sender.
   */
  prune(table: PortTable, always = false): void {
    if (!always && this.expected.size < this.pruneAt) return;
    if (this.held.size > 0) return;
    let queued = 0;
    for (const kmsg of this.queue.queued) if (!kmsg.sendOnce) queued++;
    // Places handed to blocked senders hold no message: read first, they never hide one in flight.
    const handed = table.handed(this.id);
    if (table.msgcount(this.id) - handed !== queued) return;
    for (const sender of this.expected.keys()) {
      if (!table.isAlive(sender as PortId)) this.expected.delete(sender);
    }
    this.pruneAt = Math.max(PRUNE_MIN, 2 * this.expected.size);
  }
}

/**
 * What waits on this node for a port's queue: messages that came ahead of it (only while the
 * table says the queue is on its way here), receivers of the space holding the receive right
 * here, its port set there, and requests that reached this node before the queue.
 */
export interface Incoming {
  readonly early: KMsg[];
  /** Receivers waiting for the queue: given the port, or the kr to fail with. */
  readonly waiters: Array<(port: LocalPort | number) => void>;
  set: PortSet<KMsg> | null;
  readonly dnrequests: Array<readonly [NodeId, TaskId, 1 | -1]>;
  /** The receive right was destroyed before its queue came: the port dies on arrival. */
  destroyed: boolean;
}
