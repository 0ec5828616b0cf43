/**
 * What a surviving node does when another node dies (NORMA's node-death sweep): the ports,
 * rights and waits the dead node took with it are settled here, for the ports this node holds.
 */
import { MACH_NOTIFY_SEND_ONCE, MACH_RCV_PORT_DIED } from '../../shared/constants.js';
import type { KMsg } from '../../shared/message.js';
import type { NodeId, PortId } from '../../shared/types.js';
import type { Incoming, LocalPort } from './local-port.js';
import type { Notifications } from './notify.js';
import type { PortTable } from './port-table.js';

/** What the sweep needs of the surviving node's IPC (NodeIpc). */
export interface SurvivingNode {
  readonly table: PortTable;
  readonly notices: Notifications;
  readonly ports: ReadonlyMap<PortId, LocalPort>;
  readonly incoming: Map<PortId, Incoming>;
  destroyPort(port: PortId): void;
  destroyMessage(kmsg: KMsg): void;
  /** Gives a queue place back (to the next waiting sender): NodeIpc.placeFreed. */
  placeFreed(port: PortId): void;
}

/**
 * Node `node` died, and with it the queues it held and every right its spaces and messages
 * held. Ports whose queue was there die (their blocked senders wake and fail with
 * MACH_SEND_INVALID_DEST); a port queued here whose receive right was last taken there, or
 * lay in a message there, dies as that right is destroyed (a port-destroyed request rescues
 * it; a no-senders request gets MACH_NOTIFY_SEND_ONCE); receivers here waiting for a queue
 * that was there fail with MACH_RCV_PORT_DIED; each send-once right it held to a port queued
 * here sends MACH_NOTIFY_SEND_ONCE; the send rights it held to live ports leave their count,
 * and a port left with none fires no-senders; its tasks' dead-name requests here are dropped.
 * Conditions: runs on every surviving node, in any order; each port dies and each lost
 * send-once or send right is answered once (port-table.ts).
 */
export function nodeDown(here: SurvivingNode, node: NodeId): void {
  const { table, notices } = here;
  table.killNode(node);
  for (const port of table.dropBlocked(node)) {
    table.handedUsed(port);
    here.placeFreed(port);
  }
  for (const port of table.portsReceivedOn(node)) if (here.ports.has(port)) here.destroyPort(port);
  for (const [port, incoming] of here.incoming) {
    if (table.isAlive(port)) continue;
    here.incoming.delete(port);
    for (const waiter of incoming.waiters.splice(0)) waiter(MACH_RCV_PORT_DIED);
    for (const kmsg of incoming.early) here.destroyMessage(kmsg);
  }
  const requester = `${node}:`;
  for (const local of here.ports.values()) {
    for (const key of local.dnrequests.keys()) if (key.startsWith(requester)) local.dnrequests.delete(key);
  }
  for (const [port, count] of table.takeSendOnces(node)) {
    for (let right = 0; right < count; right++) notices.notify(port, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
  }
  for (const port of table.takeSendRights(node)) notices.noSenders(port);
}
