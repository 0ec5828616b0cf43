/**
 * The IPC half of a node (Mach `ipc_mqueue` and `ipc_port` for the ports held here, plus NORMA's
 * routing): the ports whose queues live on this node, message delivery in per-sender order,
 * forwarding to where a port went, port migration with its queue, and port death. The
 * notifications the kernel sends are notify.ts's, the sweep after another node dies
 * node-down.ts's; name spaces stay with their tasks (space.ts).
 */
import { MACH_NOTIFY_SEND_ONCE, MACH_RCV_PORT_CHANGED, MACH_RCV_PORT_DIED } from '../../shared/constants.js';
import type { IpcTraffic, PortState } from '../../shared/protocol.js';
import type { NodeId, TaskId, PortId, PortName } from '../../shared/types.js';
import type { KMsg } from '../../shared/message.js';
import { systemClock, type Clock } from './clock.js';
import type { IpcHost, PortOps, SpaceNotification } from './ipc-types.js';
import { Kmsgs } from './kmsg.js';
import { LocalPort, PRUNE_MIN, type Incoming } from './local-port.js';
import { nodeDown } from './node-down.js';
import { nameBody, Notifications } from './notify.js';
import { PortSet } from './port.js';
import { PortKind, type PortTable } from './port-table.js';
import { BlockedSenders, type SenderCounters } from './blocked-senders.js';

/** What a node's IPC counts (host statistics). */
export interface IpcCounters extends SenderCounters {
  /** Messages that reached a queue on this node. */
  messagesQueued: number;
  /** Messages received from queues on this node. */
  messagesReceived: number;
}

export class NodeIpc {
  readonly node: NodeId;
  readonly table: PortTable;
  /** The clock of every IPC wait on this node (receives, queues on their way, full queues). */
  readonly clock: Clock;
  readonly notices: Notifications;
  readonly kmsgs: Kmsgs;
  readonly #host: IpcHost;
  readonly #ports = new Map<PortId, LocalPort>();
  readonly #sets = new Map<PortId, PortSet<KMsg>>();
  /** Ports whose queue is awaited here (see Incoming). */
  readonly #incoming = new Map<PortId, Incoming>();
  /** PortOps for rights owned by no space: in messages, in special-port slots. */
  readonly kernelOps: PortOps;
  readonly counters: IpcCounters = { messagesQueued: 0, messagesReceived: 0, sendersBlocked: 0, sendersWoken: 0 };
  /** This node's senders waiting for a queue place. */
  readonly blocked: BlockedSenders;

  constructor(node: NodeId, table: PortTable, host: IpcHost, clock: Clock = systemClock) {
    this.node = node;
    this.table = table;
    this.#host = host;
    this.clock = clock;
    this.blocked = new BlockedSenders(table, this.counters, (port) => this.placeFreed(port));
    table.wakeHereWith(() => this.blocked.recheck());
    this.notices = new Notifications({
      node, table, host, local: (port) => this.#ports.get(port), awaiting: (port) => this.#awaiting(port),
      route: (kmsg) => this.route(kmsg),
    });
    this.kernelOps = this.opsFor(0);
    this.kmsgs = new Kmsgs({ node, table, host, notices: this.notices, kernelOps: this.kernelOps, placeFreed: (port) => this.placeFreed(port) });
  }

  /** A new port held here (mach_port_allocate's port half). */
  createPort(kind: PortKind = PortKind.PORT, kobject: number | null = null): PortId | undefined {
    const id = this.table.allocate(kind, kobject);
    if (id !== undefined) this.#ports.set(id, new LocalPort(id, this.clock));
    return id;
  }

  local(port: PortId): LocalPort | undefined { return this.#ports.get(port); }

  /** Set by the node's kernel: consumes a message that reached a task or thread kernel port here (kern/kobject.ts). */
  kobjectServer?: (kmsg: KMsg) => void;

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
        if (id !== undefined) ipc.#sets.set(id, new PortSet<KMsg>({ clock: ipc.clock }));
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
      releaseSend: (port) => ipc.notices.releaseSend(port),
      makeSendOnce: (port) => ipc.table.sendOnceMade(port),
      releaseSendOnce: (port) => ipc.notices.notify(port, MACH_NOTIFY_SEND_ONCE, new Uint8Array(0)),
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
      dnrequestArm: (port) => ipc.notices.dnrequest(port, task, 1),
      dnrequestCancel: (port) => ipc.notices.dnrequest(port, task, -1),
      notify: (id: SpaceNotification, notify: PortId, name: PortName) => ipc.notices.notify(notify, id, nameBody(name)),
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

  /** Takes a message toward its port: here, to the port's node, or to destruction if it died. */
  route(kmsg: KMsg): void {
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, 1);
    this.kmsgs.countArrival(kmsg);
    const node = this.table.location(kmsg.dest);
    if (node === this.node) this.arrive(kmsg);
    else if (node !== undefined) this.#host.post(node, { op: 'kmsg', kmsg });
    else this.kmsgs.destroy(kmsg);
  }

  /**
   * A message reached this node. Queued if its port is here (in each sender's order), held if
   * the port's queue is on its way here (the table already names this node), forwarded if the
   * port moved on, destroyed if it died.
   */
  arrive(kmsg: KMsg): void {
    const local = this.#ports.get(kmsg.dest);
    if (local !== undefined) {
      const kind = this.table.kind(kmsg.dest);
      if ((kind === PortKind.TASK || kind === PortKind.THREAD) && this.kobjectServer !== undefined) this.kobjectServer(kmsg);
      else this.#accept(local, kmsg);
      return;
    }
    const node = this.table.location(kmsg.dest);
    if (node === this.node) this.#awaiting(kmsg.dest).early.push(kmsg);
    else if (node !== undefined) this.#host.post(node, { op: 'kmsg', kmsg });
    else this.kmsgs.destroy(kmsg);
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
    if (this.notices.rescue(local)) return;
    this.#ports.delete(port);
    this.table.kill(port);
    this.notices.cancelNoSenders(local);
    const doomed = [...local.queue.destroy(), ...[...local.held.values()].flatMap((held) => [...held.values()])];
    for (const kmsg of doomed) this.kmsgs.destroy(kmsg);
    this.notices.tellDeadNameRequesters(local);
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
    local.prune(this.table, true);
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
    const local = new LocalPort(state.id, this.clock);
    local.queue.setMscount(state.mscount);
    local.nsrequest = state.nsrequest;
    local.pdrequest = state.pdrequest;
    for (const [key, count] of state.dnrequests) local.dnrequests.set(key, count);
    for (const [sender, next] of state.expected) local.expected.set(sender, next);
    local.pruneAt = Math.max(PRUNE_MIN, 2 * local.expected.size);
    this.#ports.set(state.id, local);
    for (const kmsg of state.queued) local.queue.send(kmsg);
    for (const kmsg of [...state.held, ...(incoming?.early ?? [])]) this.#accept(local, kmsg);
    for (const [node, task, delta] of incoming?.dnrequests ?? []) this.notices.registerDeadName(state.id, node, task, delta);
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
    this.notices.checkNoSenders(state.id);
  }

  /**
   * The message was dequeued by a receiver: its queue place and destination right go; with
   * `destroy` (it was too large to receive) so do the rights and memory it carries.
   */
  dequeued(kmsg: KMsg, options: { destroy?: boolean } = {}): void {
    // Its regions go to the receiver's map, or are released: no message here holds them now.
    if (kmsg.ool.length > 0) this.#host.holdRegions(kmsg.ool, -1);
    this.counters.messagesReceived++;
    if (!kmsg.sendOnce) {
      this.placeFreed(kmsg.dest);
      this.notices.releaseSend(kmsg.dest);
      const local = this.#ports.get(kmsg.dest);
      if (local !== undefined) local.prune(this.table);
    }
    if (options.destroy === true) this.kmsgs.destroyContents(kmsg);
  }

  /** A queue place of `port` is given back: one waiting sender, here or on another node, is woken for it. */
  placeFreed(port: PortId): void {
    this.table.unreserve(port);
  }

  /** Queues `kmsg` on `local` in its sender's order (LocalPort.accept), counted. */
  #accept(local: LocalPort, kmsg: KMsg): void {
    this.counters.messagesQueued++;
    local.accept(kmsg, this.table);
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
      case 'no-senders': this.notices.noSenders(traffic.port); return;
      case 'destroy-port': this.destroyPort(traffic.port); return;
      case 'dnrequest': this.notices.registerDeadName(traffic.port, traffic.node, traffic.task, traffic.delta); return;
    }
  }

  /** A message will never be received: see Kmsgs.destroy. */
  destroyMessage(kmsg: KMsg): void { this.kmsgs.destroy(kmsg); }

  /** Traffic is about to leave for `to`: see Kmsgs.departing. */
  departing(to: NodeId, traffic: IpcTraffic): void { this.kmsgs.departing(to, traffic); }

  /** A message reached this node: see Kmsgs.countArrival. */
  countArrival(kmsg: KMsg): void { this.kmsgs.countArrival(kmsg); }

  /** Node `node` died: see node-down.ts. */
  nodeDown(node: NodeId): void {
    nodeDown({
      table: this.table, notices: this.notices, ports: this.#ports, incoming: this.#incoming,
      destroyPort: (port) => this.destroyPort(port), destroyMessage: (kmsg) => this.kmsgs.destroy(kmsg),
      placeFreed: (port) => this.placeFreed(port),
    }, node);
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
