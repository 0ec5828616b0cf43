/**
 * The notifications a node's kernel sends (Mach's `ipc_notify`): send-once, no-senders,
 * port-destroyed and dead-name, and the requests they answer. No-senders and port-destroyed
 * requests live with the port's queue (LocalPort), and so on the node holding it; dead-name
 * requests are counted there too, by requesting node and task, and a task hears of the death
 * on its own node (IpcHost.portDied), where its space turns its names into dead names.
 */
import {
  MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_PORT_DESTROYED, MACH_NOTIFY_SEND_ONCE, MACH_RCV_PORT_DIED,
} from '../../shared/constants.js';
import type { KMsg, RightInTransit } from '../../shared/message.js';
import type { NodeId, TaskId, PortId } from '../../shared/types.js';
import type { IpcHost } from './ipc-types.js';
import type { Incoming, LocalPort } from './local-port.js';
import type { PortTable } from './port-table.js';

/** What the notifications need of their node's IPC (NodeIpc). */
export interface NotifyNode {
  readonly node: NodeId;
  readonly table: PortTable;
  readonly host: IpcHost;
  local(port: PortId): LocalPort | undefined;
  /** What waits here for the queue of `port`, which is on its way here. */
  awaiting(port: PortId): Incoming;
  route(kmsg: KMsg): void;
}

export class Notifications {
  readonly #here: NotifyNode;

  constructor(here: NotifyNode) {
    this.#here = here;
  }

  /** A kernel message (notification) to the send-once right `dest`. */
  notify(dest: PortId, id: number, body: Uint8Array, rights: readonly RightInTransit[] = []): void {
    this.#here.route({ dest, sendOnce: true, reply: null, id, body, rights, ool: [], sender: 0, seq: 0 });
  }

  /**
   * One send right to `port` went (held on this node, or with `held` false outside every node:
   * PortTable.addSendRight); the last one's going fires no-senders at the port's node.
   */
  releaseSend(port: PortId, held = true): void {
    const { table } = this.#here;
    if (!table.isAlive(port) || !table.removeSendRight(port, held)) return;
    this.noSenders(port);
  }

  /** Checks no-senders where the queue is: here, ahead (followed), or on its way here (on arrival). */
  noSenders(port: PortId): void {
    const node = this.#here.table.location(port);
    if (this.#here.local(port) !== undefined) this.checkNoSenders(port);
    else if (node !== undefined && node !== this.#here.node) this.#here.host.post(node, { op: 'no-senders', port });
  }

  /** Fires a registered no-senders request if the port has no send rights left. */
  checkNoSenders(port: PortId): void {
    const local = this.#here.local(port);
    const request = local?.nsrequest;
    if (local === undefined || request == null || this.#here.table.sendRights(port) !== 0 ||
        local.queue.mscount < request.sync) return;
    local.nsrequest = null;
    this.notify(request.notify, MACH_NOTIFY_NO_SENDERS, nameBody(local.queue.mscount));
  }

  /**
   * mach_port_request_notification's MACH_NOTIFY_NO_SENDERS half on the port `local` (null
   * cancels): fires at once if the port already has no senders and `sync` is reached.
   * Returns the send-once right registered before, now the caller's.
   */
  requestNoSenders(local: LocalPort, notify: PortId | null, sync: number): PortId | null {
    const previous = local.nsrequest?.notify ?? null;
    local.nsrequest = notify === null ? null : { notify, sync };
    this.checkNoSenders(local.id);
    return previous;
  }

  /** The MACH_NOTIFY_PORT_DESTROYED half, as requestNoSenders. */
  requestPortDestroyed(local: LocalPort, notify: PortId | null): PortId | null {
    const previous = local.pdrequest;
    local.pdrequest = notify;
    return previous;
  }

  /**
   * The receive right of `local` is being destroyed: with a port-destroyed request it goes to
   * the requester instead and the port lives on. Returns whether it did.
   */
  rescue(local: LocalPort): boolean {
    const notify = local.pdrequest;
    if (notify === null) return false;
    local.pdrequest = null;
    local.queue.clearReceiver();
    // The destroyed right's receivers must not take the registrant's messages.
    local.queue.failReceivers(MACH_RCV_PORT_DIED);
    this.notify(notify, MACH_NOTIFY_PORT_DESTROYED, new Uint8Array(0), [{ kind: 'receive', portId: local.id }]);
    return true;
  }

  /** The port of `local` died: its no-senders request's send-once right dies unused (ipc_port_destroy). */
  cancelNoSenders(local: LocalPort): void {
    if (local.nsrequest !== null) this.notify(local.nsrequest.notify, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
    local.nsrequest = null;
  }

  /** The port of `local` died: every task with a dead-name request on it hears of it. */
  tellDeadNameRequesters(local: LocalPort): void {
    for (const key of local.dnrequests.keys()) {
      const [node, task] = key.split(':').map(Number) as [NodeId, TaskId];
      this.#tellDied(local.id, node, task);
    }
  }

  /** Task `task`'s space armed (1) or dropped (-1) a dead-name request on `port` (task 0: the kernel's own rights). */
  dnrequest(port: PortId, task: TaskId | 0, delta: 1 | -1): void {
    if (task === 0) return;
    const { node: self, table, host } = this.#here;
    const node = table.location(port);
    if (node === self) this.registerDeadName(port, self, task, delta);
    else if (node !== undefined) host.post(node, { op: 'dnrequest', port, node: self, task, delta });
  }

  registerDeadName(port: PortId, node: NodeId, task: TaskId, delta: 1 | -1): void {
    const local = this.#here.local(port);
    if (local === undefined) {
      // Gone on: follow it, keep it for the queue on its way here, or tell the requester it
      // died in the meantime.
      const at = this.#here.table.location(port);
      if (at !== undefined && at !== this.#here.node) this.#here.host.post(at, { op: 'dnrequest', port, node, task, delta });
      else if (at === this.#here.node) this.#here.awaiting(port).dnrequests.push([node, task, delta]);
      else if (delta === 1) this.#tellDied(port, node, task);
      return;
    }
    const key = `${node}:${task}`;
    const count = (local.dnrequests.get(key) ?? 0) + delta;
    if (count > 0) local.dnrequests.set(key, count);
    else local.dnrequests.delete(key);
  }

  #tellDied(port: PortId, node: NodeId, task: TaskId): void {
    if (node === this.#here.node) this.#here.host.portDied(task, port);
    else this.#here.host.post(node, { op: 'port-died', port, task });
  }
}

/** A notification body: one 32-bit word (a name, or a make-send count). */
export function nameBody(word: number): Uint8Array {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, word >>> 0, true);
  return body;
}
