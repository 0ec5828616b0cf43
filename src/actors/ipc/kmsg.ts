/**
 * What a kernel message holds (Mach's `ipc_kmsg`), accounted for as it lives: its queue place
 * and destination right, and the rights and out-of-line regions it carries. They are counted
 * on the node the message is on, move with it to another node, and are released when it is
 * destroyed.
 */
import { MACH_NOTIFY_SEND_ONCE } from '../../shared/constants.js';
import type { IpcTraffic } from '../../shared/protocol.js';
import type { KMsg, OolRegion, RightInTransit } from '../../shared/message.js';
import type { NodeId, PortId } from '../../shared/types.js';
import type { IpcHost, PortOps } from './ipc-types.js';
import type { Notifications } from './notify.js';
import type { PortTable } from './port-table.js';
import { destroyRightInTransit } from './right-edit.js';

/** What a message's accounting needs of its node's IPC (NodeIpc). */
export interface KmsgNode {
  readonly node: NodeId;
  readonly table: PortTable;
  readonly host: IpcHost;
  readonly notices: Notifications;
  /** For rights owned by no space. */
  readonly kernelOps: PortOps;
  /** Gives a queue place back, waking a sender blocked for it (NodeIpc.placeFreed). */
  placeFreed(port: PortId): void;
}

export class Kmsgs {
  readonly #here: KmsgNode;

  constructor(here: KmsgNode) {
    this.#here = here;
  }

  /**
   * Destroys a message that will never be received: its queue place, its destination right and
   * every right and region it carries go (ipc_kmsg_destroy). A send-once destination right to a
   * live port (a message wrecked at send) sends the port MACH_NOTIFY_SEND_ONCE, as Mach's
   * ipc_object_destroy_dest does; one to a dead port is nothing. A send-once notification itself
   * destroyed with its port alive (its port's node went down meanwhile) does not beget another.
   */
  destroy(kmsg: KMsg): void {
    if (kmsg.ool.length > 0) this.#here.host.holdRegions(kmsg.ool, -1);
    if (!kmsg.sendOnce) {
      if (this.#here.table.isAlive(kmsg.dest)) this.#here.placeFreed(kmsg.dest);
      this.#here.notices.releaseSend(kmsg.dest);
    } else if (this.#here.table.isAlive(kmsg.dest) && !(kmsg.sender === 0 && kmsg.id === MACH_NOTIFY_SEND_ONCE)) {
      this.#here.notices.notify(kmsg.dest, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
    }
    this.destroyContents(kmsg);
  }

  /** Drops the memory references of out-of-line regions that never made it into a message. */
  releaseRegions(regions: readonly OolRegion[]): void {
    for (const region of regions) this.#here.host.releaseObject(region.object);
  }

  /** Releases every right and region `kmsg` carries (not its destination right). */
  destroyContents(kmsg: KMsg): void {
    if (kmsg.reply !== null) destroyRightInTransit(kmsg.reply, this.#here.kernelOps);
    for (const right of kmsg.rights) destroyRightInTransit(right, this.#here.kernelOps);
    for (const region of kmsg.ool) this.#here.host.releaseObject(region.object);
  }

  /**
   * A message reached this node (sent here or from another node): a send-once right it is sent
   * through is used up when the port's queue is here (or on its way here, or the port is dead);
   * otherwise `departing` moves it on with the message.
   */
  countArrival(kmsg: KMsg): void {
    if (!kmsg.sendOnce) return;
    const node = this.#here.table.location(kmsg.dest);
    if (node === this.#here.node || node === undefined) this.#here.table.sendOnceUsed(kmsg.dest);
  }

  /**
   * Traffic is about to leave for `to`: the send and send-once rights its messages hold (their
   * destination rights included) are counted there from now on, and the receive rights they
   * carry are recorded there (the table's receiver), so if `to` dies before it is done with
   * them, they are known lost (see nodeDown).
   */
  departing(to: NodeId, traffic: IpcTraffic): void {
    if (traffic.op === 'kmsg') {
      this.#carriedMoved(traffic.kmsg, to, true);
    } else if (traffic.op === 'port-state') {
      const { state } = traffic;
      for (const kmsg of [...state.queued, ...state.held]) this.#carriedMoved(kmsg, to, false);
      if (state.nsrequest !== null) this.#here.table.sendOnceMoved(state.nsrequest.notify, to);
      if (state.pdrequest !== null) this.#here.table.sendOnceMoved(state.pdrequest, to);
    }
  }

  /**
   * A message leaves for `to`. A send-once destination right counts until the message reaches
   * its port's node (countArrival): one in a queue, used up, does not move with it (`unused` false).
   */
  #carriedMoved(kmsg: KMsg, to: NodeId, unused: boolean): void {
    if (kmsg.ool.length > 0) this.#here.host.holdRegions(kmsg.ool, -1);
    if (!kmsg.sendOnce) this.#here.table.sendRightMoved(kmsg.dest, to);
    else if (unused) this.#here.table.sendOnceMoved(kmsg.dest, to);
    if (kmsg.reply !== null) this.#rightMoved(kmsg.reply, to);
    for (const right of kmsg.rights) this.#rightMoved(right, to);
  }

  #rightMoved(right: RightInTransit, to: NodeId): void {
    switch (right.kind) {
      case 'send': this.#here.table.sendRightMoved(right.portId, to); break;
      case 'send-once': this.#here.table.sendOnceMoved(right.portId, to); break;
      // Where the receive right is: a node that dies with it in a message kills its port.
      case 'receive': if (this.#here.table.isAlive(right.portId)) this.#here.table.setReceiver(right.portId, to); break;
      case 'dead': break;
    }
  }
}
