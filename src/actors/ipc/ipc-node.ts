/**
 * The IPC half of a node (Mach `ipc_mqueue` and `ipc_port` for the ports held here, plus NORMA's
 * routing): the ports whose queues live on this node, message delivery in per-sender order,
 * forwarding to where a port went, port migration with its queue, port death and the
 * notifications the kernel sends. Name spaces stay with their tasks (ipc-task.ts).
 */
import { ok as assert } from 'node:assert/strict';
import {
  MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_PORT_DESTROYED, MACH_NOTIFY_SEND_ONCE, MACH_RCV_PORT_CHANGED,
  MACH_RCV_PORT_DIED,
} from '../../shared/constants.js';
import type { IpcTraffic, NoSendersRequest, PortState } from '../../shared/protocol.js';
import type { NodeId, TaskId, PortId, PortName, MemoryObjectRef } from '../../shared/types.js';
import type { PortOps, SpaceNotification } from './ipc-types.js';
import { Port, PortSet } from './port.js';
import { PortKind, type PortTable } from './port-table.js';
import { destroyRightInTransit } from './right.js';
import type { KMsg, OolRegion, RightInTransit } from '../../shared/message.js';

/** What the node kernel lends the IPC layer: the way out, and memory for out-of-line regions. */
export interface IpcHost {
  post(node: NodeId, traffic: IpcTraffic): void;
  /** Drops a memory-object reference held by a destroyed message. */
  releaseObject(object: MemoryObjectRef): void;
  /** Messages on this node hold the regions' references (1), or no longer do (-1): see MapHoldings. */
  holdRegions(regions: readonly OolRegion[], delta: 1 | -1): void;
  /** A task on this node died with a dead-name request on `port` outstanding: convert its names. */
  portDied(task: TaskId, port: PortId): void;
}

/** The least size of LocalPort.expected worth pruning. */
const PRUNE_MIN = 64;

/** A port whose queue lives on this node. */
export class LocalPort {
  readonly id: PortId;
  readonly queue: Port<KMsg>;
  /** The task this is the kernel port of (kernel ports take no user messages). */
  readonly kobject: TaskId | null;
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

  constructor(id: PortId, kobject: TaskId | null = null) {
    this.id = id;
    this.kobject = kobject;
    this.queue = new Port<KMsg>({ qlimit: 16 });
  }
}

/**
 * What waits on this node for a port's queue: messages that came ahead of it (only while the
 * table says the queue is on its way here), receivers of the space holding the receive right
 * here, its port set there, and requests that reached this node before the queue.
 */
interface Incoming {
  readonly early: KMsg[];
  /** Receivers waiting for the queue: given the port, or the kr to fail with. */
  readonly waiters: Array<(port: LocalPort | number) => void>;
  set: PortSet<KMsg> | null;
  readonly dnrequests: Array<readonly [NodeId, TaskId, 1 | -1]>;
  /** The receive right was destroyed before its queue came: the port dies on arrival. */
  destroyed: boolean;
}

export class NodeIpc {
  readonly node: NodeId;
  readonly table: PortTable;
  readonly #host: IpcHost;
  readonly #ports = new Map<PortId, LocalPort>();
  readonly #sets = new Map<PortId, PortSet<KMsg>>();
  /** Ports whose queue is awaited here (see Incoming). */
  readonly #incoming = new Map<PortId, Incoming>();
  /** PortOps for rights owned by no space: in messages, in special-port slots. */
  readonly kernelOps: PortOps;

  constructor(node: NodeId, table: PortTable, host: IpcHost) {
    this.node = node;
    this.table = table;
    this.#host = host;
    this.kernelOps = this.opsFor(0);
  }

  /** A new port held here (mach_port_allocate's port half). */
  createPort(kind: PortKind = PortKind.PORT, kobject: TaskId | null = null): PortId | undefined {
    const id = this.table.allocate(kind, kobject);
    if (id !== undefined) this.#ports.set(id, new LocalPort(id, kobject));
    return id;
  }

  local(port: PortId): LocalPort | undefined { return this.#ports.get(port); }

  portSet(set: PortId): PortSet<KMsg> | undefined { return this.#sets.get(set); }

  #awaiting(port: PortId): Incoming {
    let incoming = this.#incoming.get(port);
    if (incoming === undefined) {
      incoming = { early: [], waiters: [], set: null, dnrequests: [], destroyed: false };
      this.#incoming.set(port, incoming);
    }
    return incoming;
  }

  /**
   * The local port of a receive right held here, waiting for its queue if it is still on its
   * way (the table's receiver is this node, so the queue's holder sends it here).
   * Returns the port; MACH_RCV_PORT_DIED when the port is dead or the right is destroyed
   * meanwhile; MACH_RCV_PORT_CHANGED when the right leaves this node's space meanwhile.
   */
  settled(port: PortId): LocalPort | Promise<LocalPort | number> | number {
    const local = this.#ports.get(port);
    if (local !== undefined) return local;
    if (!this.table.isAlive(port)) return MACH_RCV_PORT_DIED;
    const incoming = this.#awaiting(port);
    return new Promise((resolve) => incoming.waiters.push(resolve));
  }

  #failWaiters(port: PortId, kr: number): void {
    const incoming = this.#incoming.get(port);
    if (incoming === undefined) return;
    for (const waiter of incoming.waiters.splice(0)) waiter(kr);
    // Nothing on its way here any more: forget the port (early messages keep the entry).
    if (this.table.location(port) !== this.node && incoming.early.length === 0) this.#incoming.delete(port);
  }

  /**
   * The PortOps of task `task`'s space (0: the kernel's own rights). Effects on a port held
   * elsewhere become traffic to its node; counts live in the shared port table.
   */
  opsFor(task: TaskId | 0): PortOps {
    const ipc = this;
    return {
      createPort: () => ipc.createPort(),
      createPortSet: () => {
        const id = ipc.table.allocate(PortKind.PORT_SET);
        if (id !== undefined) ipc.#sets.set(id, new PortSet<KMsg>());
        return id;
      },
      destroyPortSet: (set) => {
        ipc.#sets.get(set)?.destroy();
        ipc.#sets.delete(set);
        ipc.table.kill(set);
      },
      setMembership: (port, set) => ipc.#setMembership(port, set),
      makeSend: (port) => {
        ipc.#ports.get(port)?.queue.makeSend();
        ipc.table.addSendRight(port);
      },
      copySend: (port) => { if (ipc.table.isAlive(port)) ipc.table.addSendRight(port); },
      releaseSend: (port) => ipc.releaseSend(port),
      makeSendOnce: (port) => ipc.table.sendOnceMade(port),
      releaseSendOnce: (port) => ipc.notify(port, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0)),
      clearReceiver: (port) => {
        // Receivers of the space the right left get MACH_RCV_PORT_CHANGED (ipc_mqueue_changed).
        const local = ipc.#ports.get(port);
        if (local === undefined) {
          ipc.#failWaiters(port, MACH_RCV_PORT_CHANGED);
          return;
        }
        local.queue.clearReceiver();
        local.queue.failReceivers(MACH_RCV_PORT_CHANGED);
        // A no-senders request stays with the port, as in GNU Mach (xnu cancels it with a
        // send-once notification): it travels with the queue wherever the right goes.
      },
      destroyReceive: (port) => ipc.destroyPort(port),
      dnrequestArm: (port) => ipc.#dnrequest(port, task, 1),
      dnrequestCancel: (port) => ipc.#dnrequest(port, task, -1),
      notify: (id: SpaceNotification, notify: PortId, name: PortName) => ipc.notify(notify, id, nameBody(name)),
    };
  }

  #setMembership(port: PortId, set: PortId | null): void {
    const local = this.#ports.get(port);
    if (local === undefined) {
      if (set !== null) this.#awaiting(port).set = this.#sets.get(set) ?? null;
      else if (this.#incoming.has(port)) this.#incoming.get(port)!.set = null;
      return;
    }
    local.queue.set?.remove(local.queue);
    if (set !== null) this.#sets.get(set)?.add(local.queue);
  }

  /**
   * One send right to `port` went (held on this node, or with `held` false outside every node:
   * PortTable.addSendRight); the last one's going fires no-senders at the port's node.
   */
  releaseSend(port: PortId, held = true): void {
    if (!this.table.isAlive(port) || !this.table.removeSendRight(port, held)) return;
    this.#noSenders(port);
  }

  /** Checks no-senders where the queue is: here, ahead (followed), or on its way here (on arrival). */
  #noSenders(port: PortId): void {
    const node = this.table.location(port);
    if (this.#ports.has(port)) this.checkNoSenders(port);
    else if (node !== undefined && node !== this.node) this.#host.post(node, { op: 'no-senders', port });
  }

  /** Fires a registered no-senders request if the port has no send rights left. */
  checkNoSenders(port: PortId): void {
    const local = this.#ports.get(port);
    const request = local?.nsrequest;
    if (local === undefined || request == null || this.table.sendRights(port) !== 0 ||
        local.queue.mscount < request.sync) return;
    local.nsrequest = null;
    this.notify(request.notify, MACH_NOTIFY_NO_SENDERS, nameBody(local.queue.mscount));
  }

  #dnrequest(port: PortId, task: TaskId | 0, delta: 1 | -1): void {
    if (task === 0) return;
    const node = this.table.location(port);
    if (node === this.node) this.registerDeadName(port, this.node, task, delta);
    else if (node !== undefined) this.#host.post(node, { op: 'dnrequest', port, node: this.node, task, delta });
  }

  registerDeadName(port: PortId, node: NodeId, task: TaskId, delta: 1 | -1): void {
    const local = this.#ports.get(port);
    if (local === undefined) {
      // Gone on: follow it, keep it for the queue on its way here, or tell the requester it
      // died in the meantime.
      const at = this.table.location(port);
      if (at !== undefined && at !== this.node) this.#host.post(at, { op: 'dnrequest', port, node, task, delta });
      else if (at === this.node) this.#awaiting(port).dnrequests.push([node, task, delta]);
      else if (delta === 1) this.#tellDied(port, node, task);
      return;
    }
    const key = `${node}:${task}`;
    const count = (local.dnrequests.get(key) ?? 0) + delta;
    if (count > 0) local.dnrequests.set(key, count);
    else local.dnrequests.delete(key);
  }

  #tellDied(port: PortId, node: NodeId, task: TaskId): void {
    if (node === this.node) this.#host.portDied(task, port);
    else this.#host.post(node, { op: 'port-died', port, task });
  }

  /** A kernel message (notification) to the send-once right `dest`. */
  notify(dest: PortId, id: number, body: Uint8Array, rights: readonly RightInTransit[] = []): void {
    this.route({ dest, sendOnce: true, reply: null, id, body, rights, ool: [], sender: 0, seq: 0 });
  }

  /** Takes a message toward its port: here, to the port's node, or to destruction if it died. */
  route(kmsg: KMsg): void {
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, 1);
    this.countArrival(kmsg);
    const node = this.table.location(kmsg.dest);
    if (node === this.node) this.arrive(kmsg);
    else if (node !== undefined) this.#host.post(node, { op: 'kmsg', kmsg });
    else this.destroyMessage(kmsg);
  }

  /**
   * A message reached this node. Queued if its port is here (in each sender's order), held if
   * the port's queue is on its way here (the table already names this node), forwarded if the
   * port moved on, destroyed if it died.
   */
  arrive(kmsg: KMsg): void {
    const local = this.#ports.get(kmsg.dest);
    if (local !== undefined) {
      this.#accept(local, kmsg);
      return;
    }
    const node = this.table.location(kmsg.dest);
    if (node === this.node) this.#awaiting(kmsg.dest).early.push(kmsg);
    else if (node !== undefined) this.#host.post(node, { op: 'kmsg', kmsg });
    else this.destroyMessage(kmsg);
  }

  /**
   * Queues in per-sender order. Messages of one sender can overtake each other only when the
   * port migrates (some go by its old node); each carries its sender's sequence number, and an
   * early one waits until those before it have come.
   */
  #accept(local: LocalPort, kmsg: KMsg): void {
    if (kmsg.sendOnce || kmsg.sender === 0) {
      void local.queue.send(kmsg, { sendOnce: true });
      return;
    }
    const expected = local.expected.get(kmsg.sender) ?? 1;
    if (kmsg.seq !== expected) {
      assert(kmsg.seq > expected, `message ${kmsg.seq} from task ${kmsg.sender} arrived twice`);
      let held = local.held.get(kmsg.sender);
      if (held === undefined) local.held.set(kmsg.sender, held = new Map());
      held.set(kmsg.seq, kmsg);
      return;
    }
    void local.queue.send(kmsg, { sendOnce: true });
    let next = expected + 1;
    const held = local.held.get(kmsg.sender);
    for (let early = held?.get(next); early !== undefined; early = held!.get(next)) {
      held!.delete(next);
      void local.queue.send(early, { sendOnce: true });
      next++;
    }
    if (held?.size === 0) local.held.delete(kmsg.sender);
    local.expected.set(kmsg.sender, next);
    this.#prune(local);
  }

  /**
   * Drops the order state of senders whose task died, when `expected` has grown to its pruning
   * size (or `always`). Safe only while no ordered message of the port is anywhere but its queue
   * here: each holds a queue place in the table from send to dequeue, so a table count equal to
   * the ordered messages queued here means none is held or on its way, and a dead task sends no
   * more. Otherwise it is tried again on the next dequeue or new sender.
   */
  #prune(local: LocalPort, always = false): void {
    if (!always && local.expected.size < local.pruneAt) return;
    if (local.held.size > 0) return;
    let queued = 0;
    for (const kmsg of local.queue.queued) if (!kmsg.sendOnce) queued++;
    if (this.table.msgcount(local.id) !== queued) return;
    for (const sender of local.expected.keys()) {
      if (!this.table.isAlive(sender as PortId)) local.expected.delete(sender);
    }
    local.pruneAt = Math.max(PRUNE_MIN, 2 * local.expected.size);
  }

  /**
   * Destroys a message that will never be received: its queue place, its destination right and
   * every right and region it carries go (ipc_kmsg_destroy). A send-once destination right to a
   * live port (a message wrecked at send) sends the port MACH_NOTIFY_SEND_ONCE, as Mach's
   * ipc_object_destroy_dest does; one to a dead port is nothing. A send-once notification itself
   * destroyed with its port alive (its port's node went down meanwhile) does not beget another.
   */
  destroyMessage(kmsg: KMsg): void {
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, -1);
    if (!kmsg.sendOnce) {
      if (this.table.isAlive(kmsg.dest)) this.table.unreserve(kmsg.dest);
      this.releaseSend(kmsg.dest);
    } else if (this.table.isAlive(kmsg.dest) && !(kmsg.sender === 0 && kmsg.id === MACH_NOTIFY_SEND_ONCE)) {
      this.notify(kmsg.dest, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
    }
    this.#destroyContents(kmsg);
  }

  /** Drops the memory references of out-of-line regions that never made it into a message. */
  releaseRegions(regions: readonly OolRegion[]): void {
    for (const region of regions) this.#host.releaseObject(region.object);
  }

  #destroyContents(kmsg: KMsg): void {
    if (kmsg.reply !== null) destroyRightInTransit(kmsg.reply, this.kernelOps);
    for (const right of kmsg.rights) destroyRightInTransit(right, this.kernelOps);
    for (const region of kmsg.ool) this.#host.releaseObject(region.object);
  }

  /**
   * The receive right for `port` was destroyed (mach_port_destroy, task death, or a message
   * carrying it destroyed). With a port-destroyed request the right goes to the requester
   * instead and the port lives on; otherwise the port dies: queued messages are destroyed,
   * waiters fail, and every task with a dead-name request hears of it.
   */
  destroyPort(port: PortId): void {
    const local = this.#ports.get(port);
    if (local === undefined) {
      // Receivers here waited for the queue of a right that is gone now.
      const waiting = this.#incoming.get(port)?.waiters.splice(0) ?? [];
      for (const waiter of waiting) waiter(MACH_RCV_PORT_DIED);
      const node = this.table.location(port);
      if (node === this.node) this.#awaiting(port).destroyed = true;
      else if (node !== undefined) this.#host.post(node, { op: 'destroy-port', port });
      return;
    }
    if (local.pdrequest !== null) {
      const notify = local.pdrequest;
      local.pdrequest = null;
      local.queue.clearReceiver();
      // The destroyed right's receivers must not take the registrant's messages.
      local.queue.failReceivers(MACH_RCV_PORT_DIED);
      this.notify(notify, MACH_NOTIFY_PORT_DESTROYED, new Uint8Array(0), [{ kind: 'receive', portId: port }]);
      return;
    }
    this.#ports.delete(port);
    this.table.kill(port);
    // Its no-senders request's send-once right dies unused (ipc_port_destroy).
    if (local.nsrequest !== null) this.notify(local.nsrequest.notify, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
    local.nsrequest = null;
    const doomed = [...local.queue.destroy(), ...[...local.held.values()].flatMap((held) => [...held.values()])];
    for (const kmsg of doomed) this.destroyMessage(kmsg);
    for (const key of local.dnrequests.keys()) {
      const [node, task] = key.split(':').map(Number) as [NodeId, TaskId];
      this.#tellDied(port, node, task);
    }
  }

  /**
   * The receive right for `port` was copied out here: the table's receiver becomes this node,
   * and if the queue is elsewhere its holder is asked to send it. The queue always follows the
   * table's receiver, whatever order these requests arrive in: a right that moves on again
   * before its queue caught up only redirects the queue.
   */
  receiveRightArrived(port: PortId): void {
    if (!this.table.isAlive(port)) return;
    this.table.setReceiver(port, this.node);
    if (this.#ports.has(port)) return;
    const node = this.table.location(port);
    // On its way here already: install sends it on if the receiver changes again.
    if (node === undefined || node === this.node) return;
    this.#host.post(node, { op: 'migrate', port, to: this.node });
  }

  /**
   * A node took the receive right: if the queue is here and the table's receiver is another
   * node, hand that node the port's queue and state; if the queue went on, pass the request
   * after it; if it is on its way here, its arrival will look at the receiver.
   */
  migrate(port: PortId, to: NodeId): void {
    const local = this.#ports.get(port);
    if (local === undefined) {
      const node = this.table.location(port);
      if (node !== undefined && node !== this.node) this.#host.post(node, { op: 'migrate', port, to });
      return;
    }
    const receiver = this.table.receiver(port);
    if (receiver !== this.node) this.#ship(local, receiver);
  }

  /** Hands the port's queue and state to `to`, the node of its receive right. */
  #ship(local: LocalPort, to: NodeId): void {
    const port = local.id;
    this.#prune(local, true);
    this.#ports.delete(port);
    local.queue.set?.remove(local.queue);
    const queued: KMsg[] = [];
    for (let next = local.queue.take(); next !== undefined; next = local.queue.take()) queued.push(next.msg);
    // Receivers still waiting here lost the right with the message that carried it away.
    local.queue.failReceivers(MACH_RCV_PORT_CHANGED);
    const state: PortState = {
      id: port,
      queued,
      expected: [...local.expected],
      held: [...local.held.values()].flatMap((held) => [...held.values()]),
      mscount: local.queue.mscount,
      nsrequest: local.nsrequest,
      pdrequest: local.pdrequest,
      dnrequests: [...local.dnrequests],
    };
    // Move the table entry first: a sender that reads it from now on posts to `to`, which
    // holds early messages until this state arrives.
    this.table.moveTo(port, to);
    this.#host.post(to, { op: 'port-state', state });
  }

  /**
   * The queue of a port whose receive right came here. Requests that arrived ahead of it are
   * applied; if the right has moved on meanwhile (the table's receiver is another node), the
   * queue goes after it at once, early messages included.
   */
  install(state: PortState): void {
    const incoming = this.#incoming.get(state.id);
    this.#incoming.delete(state.id);
    const local = new LocalPort(state.id);
    local.queue.setMscount(state.mscount);
    local.nsrequest = state.nsrequest;
    local.pdrequest = state.pdrequest;
    for (const [key, count] of state.dnrequests) local.dnrequests.set(key, count);
    for (const [sender, next] of state.expected) local.expected.set(sender, next);
    local.pruneAt = Math.max(PRUNE_MIN, 2 * local.expected.size);
    this.#ports.set(state.id, local);
    for (const kmsg of state.queued) void local.queue.send(kmsg, { sendOnce: true });
    for (const kmsg of [...state.held, ...(incoming?.early ?? [])]) this.#accept(local, kmsg);
    for (const [node, task, delta] of incoming?.dnrequests ?? []) this.registerDeadName(state.id, node, task, delta);
    const waiters = incoming?.waiters ?? [];
    if (incoming?.destroyed === true) {
      for (const waiter of waiters) waiter(MACH_RCV_PORT_DIED);
      this.destroyPort(state.id);
      return;
    }
    const receiver = this.table.receiver(state.id);
    if (receiver !== this.node) {
      for (const waiter of waiters) waiter(MACH_RCV_PORT_CHANGED);
      this.#ship(local, receiver);
      return;
    }
    if (incoming?.set != null) incoming.set.add(local.queue);
    for (const waiter of waiters) waiter(local);
    this.checkNoSenders(state.id);
  }

  /**
   * The message was dequeued by a receiver: its queue place and destination right go; with
   * `destroy` (it was too large to receive) so do the rights and memory it carries.
   */
  dequeued(kmsg: KMsg, options: { destroy?: boolean } = {}): void {
    // Its regions go to the receiver's map, or are released: no message here holds them now.
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, -1);
    if (!kmsg.sendOnce) {
      this.table.unreserve(kmsg.dest);
      this.releaseSend(kmsg.dest);
      const local = this.#ports.get(kmsg.dest);
      if (local !== undefined) this.#prune(local);
    }
    if (options.destroy === true) this.#destroyContents(kmsg);
  }

  /** Handles IPC traffic from another node. */
  receiveTraffic(traffic: IpcTraffic): void {
    switch (traffic.op) {
      case 'kmsg':
        if (traffic.kmsg.ool.length > 0) this.#host.holdRegions(traffic.kmsg.ool, 1);
        this.arrive(traffic.kmsg);
        return;
      case 'migrate': this.migrate(traffic.port, traffic.to); return;
      case 'port-state':
        for (const kmsg of [...traffic.state.queued, ...traffic.state.held]) if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, 1);
        this.install(traffic.state);
        return;
      case 'port-died': this.#host.portDied(traffic.task, traffic.port); return;
      case 'no-senders': this.#noSenders(traffic.port); return;
      case 'destroy-port': this.destroyPort(traffic.port); return;
      case 'dnrequest': this.registerDeadName(traffic.port, traffic.node, traffic.task, traffic.delta); return;
    }
  }

  /**
   * A message reached this node (sent here or from another node): a send-once right it is sent
   * through is used up when the port's queue is here (or on its way here, or the port is dead);
   * otherwise `departing` moves it on with the message.
   */
  countArrival(kmsg: KMsg): void {
    if (!kmsg.sendOnce) return;
    const node = this.table.location(kmsg.dest);
    if (node === this.node || node === undefined) this.table.sendOnceUsed(kmsg.dest);
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
      if (state.nsrequest !== null) this.table.sendOnceMoved(state.nsrequest.notify, to);
      if (state.pdrequest !== null) this.table.sendOnceMoved(state.pdrequest, to);
    }
  }

  /**
   * A message leaves for `to`. A send-once destination right counts until the message reaches
   * its port's node (countArrival): one in a queue, used up, does not move with it (`unused` false).
   */
  #carriedMoved(kmsg: KMsg, to: NodeId, unused: boolean): void {
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, -1);
    if (!kmsg.sendOnce) this.table.sendRightMoved(kmsg.dest, to);
    else if (unused) this.table.sendOnceMoved(kmsg.dest, to);
    if (kmsg.reply !== null) this.#rightMoved(kmsg.reply, to);
    for (const right of kmsg.rights) this.#rightMoved(right, to);
  }

  #rightMoved(right: RightInTransit, to: NodeId): void {
    switch (right.kind) {
      case 'send': this.table.sendRightMoved(right.portId, to); break;
      case 'send-once': this.table.sendOnceMoved(right.portId, to); break;
      // Where the receive right is: a node that dies with it in a message kills its port.
      case 'receive': if (this.table.isAlive(right.portId)) this.table.setReceiver(right.portId, to); break;
      case 'dead': break;
    }
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
  nodeDown(node: NodeId): void {
    this.table.killNode(node);
    for (const port of this.table.portsReceivedOn(node)) if (this.#ports.has(port)) this.destroyPort(port);
    for (const [port, incoming] of this.#incoming) {
      if (this.table.isAlive(port)) continue;
      this.#incoming.delete(port);
      for (const waiter of incoming.waiters.splice(0)) waiter(MACH_RCV_PORT_DIED);
      for (const kmsg of incoming.early) this.destroyMessage(kmsg);
    }
    const requester = `${node}:`;
    for (const local of this.#ports.values()) {
      for (const key of local.dnrequests.keys()) if (key.startsWith(requester)) local.dnrequests.delete(key);
    }
    for (const [port, count] of this.table.takeSendOnces(node)) {
      for (let right = 0; right < count; right++) this.notify(port, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0));
    }
    for (const port of this.table.takeSendRights(node)) this.#noSenders(port);
  }

  /**
   * A port's queue was shipped to a node already down (its receive right was taken there just
   * before it died): the queue comes back here and the port dies as that right is destroyed.
   */
  reclaim(state: PortState): void {
    this.table.moveTo(state.id, this.node);
    this.table.setReceiver(state.id, this.node);
    this.install(state);
    if (this.#ports.has(state.id)) this.destroyPort(state.id);
  }
}

/** A notification body: one 32-bit word (a name, or a make-send count). */
export function nameBody(word: number): Uint8Array {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, word >>> 0, true);
  return body;
}
