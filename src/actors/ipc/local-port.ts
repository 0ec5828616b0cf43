/**
 * A port whose queue lives on this node (the node-local half of Mach's `ipc_port`: its message
 * queue and the state that travels with the queue when the receive right moves), and what a
 * node keeps for a port whose queue is on its way here.
 */
import type { NoSendersRequest } from '../../shared/protocol.js';
import type { KMsg } from '../../shared/message.js';
import type { NodeId, TaskId, PortId } from '../../shared/types.js';
import type { Clock } from './clock.js';
import { Port, type PortSet } from './port.js';

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
