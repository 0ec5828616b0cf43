/**
 * mach_msg as a task performs it (Mach `ipc_kmsg` copyin/copyout and `mach_msg_trap`): the send
 * half checks the whole message, waits for a queue place, takes the rights and memory in and
 * routes the kernel message; the receive half waits for a message and copies its rights and
 * memory out into the task. Every wait of one call runs against one Deadline on the node's
 * clock (clock.ts). The space the rights come from and go to is the task's (space.ts).
 */
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_VALUE, KERN_SUCCESS, MACH_MSG_SUCCESS,
  MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_RECEIVE,
  MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_PORT_DEAD, MACH_PORT_NULL,
  MACH_PORT_TYPE_PORT_SET, MACH_RCV_INVALID_NAME, MACH_RCV_LARGE, MACH_RCV_PORT_CHANGED,
  MACH_RCV_INTERRUPTED, MACH_RCV_PORT_DIED, MACH_RCV_TIMED_OUT, MACH_RCV_TOO_LARGE, MACH_SEND_INVALID_DATA,
  MACH_SEND_INVALID_DEST, MACH_SEND_INVALID_HEADER, MACH_SEND_INVALID_MEMORY,
  MACH_SEND_INVALID_REPLY, MACH_SEND_INVALID_RIGHT, MACH_SEND_INVALID_TYPE, MACH_SEND_TIMED_OUT,
  MACH_SEND_INTERRUPTED,
} from '../../shared/constants.js';
import type {
  KMsg, MachMsgReceived, MachMsgSend, OolDescriptor, OolRegion, RightInTransit,
} from '../../shared/message.js';
import type { PortId, PortName } from '../../shared/types.js';
import { Deadline } from './clock.js';
import type { NodeIpc } from './ipc-node.js';
import { messageSize } from './message.js';
import type { ReceiveLimit } from './port.js';
import { PortKind } from './port-table.js';
import type { PortRights } from './right.js';
import { destroyRightInTransit } from './right-edit.js';

/** The memory side of out-of-line regions, lent by the task's vm map. */
export interface OolMemory {
  /** Takes [address, address + size) into a message: a reference (share) or a private copy. */
  capture(descriptor: OolDescriptor): { kr: number; region?: OolRegion };
  /** Maps a region that arrived, adopting its reference. */
  map(region: OolRegion): { kr: number; address: number };
  deallocate(address: number, size: number): void;
}

/** What mach_msg needs of the task it runs for (TaskIpc, space.ts). */
export interface MessageTask {
  readonly rights: PortRights;
  /** The task's kernel port: it names the sender for per-sender order (ipc-node.ts). */
  readonly taskPort: PortId;
  /** Turns `name` into a dead name if its port died (ports die on other nodes unannounced). */
  refresh(name: number): void;
}

/** Dispositions a destination may be sent with, and what each leaves in the message. */
export const SEND_DISPOSITIONS: ReadonlySet<number> = new Set([
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND,
  MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_MAKE_SEND_ONCE,
]);

export function isSendOnceDisposition(disposition: number): boolean {
  return disposition === MACH_MSG_TYPE_MOVE_SEND_ONCE || disposition === MACH_MSG_TYPE_MAKE_SEND_ONCE;
}

/** The type a right in transit is received as (MACH_MSG_TYPE_PORT_*). */
export function receivedType(right: RightInTransit): number {
  switch (right.kind) {
    case 'receive': return MACH_MSG_TYPE_PORT_RECEIVE;
    case 'send-once': return MACH_MSG_TYPE_PORT_SEND_ONCE;
    default: return MACH_MSG_TYPE_PORT_SEND;
  }
}

/** The rights and regions of a message that carries none: shared, and frozen so nothing adds to them. */
const NO_RIGHTS: RightInTransit[] = Object.freeze([]) as unknown as RightInTransit[];
const NO_REGIONS: OolRegion[] = Object.freeze([]) as unknown as OolRegion[];

/** #sendSeq is swept of dead destinations whenever it reaches this size, or twice its last swept size. */
const SEND_SEQ_SWEEP = 1024;

/**
 * Copies a right out of a message or the kernel into `rights`' space; one that cannot be named
 * is destroyed. A send or send-once right whose port died on the way arrives as MACH_PORT_DEAD
 * (ipc_object_copyout_dest), not as a fresh name that only later turns out dead.
 */
export function copyoutOrDestroy(ipc: NodeIpc, rights: PortRights, right: RightInTransit): number {
  if (right.kind === 'dead') return MACH_PORT_DEAD;
  if (right.kind !== 'receive' && !ipc.table.isAlive(right.portId)) {
    destroyRightInTransit(right, ipc.kernelOps);
    return MACH_PORT_DEAD;
  }
  const { kr, name } = rights.copyout(right, { pegUrefs: true });
  if (kr === KERN_SUCCESS) {
    if (right.kind === 'receive') ipc.receiveRightArrived(right.portId);
    return name;
  }
  destroyRightInTransit(right, ipc.kernelOps);
  return MACH_PORT_NULL;
}

/** What mach_msg's receive half answers. */
export interface Received { kr: number; msg?: MachMsgReceived; size?: number }

/** One task's mach_msg. */
export class MachMsg {
  readonly #ipc: NodeIpc;
  readonly #task: MessageTask;
  readonly #memory: OolMemory;
  /** This task's last sequence number per destination port (per-sender order, ipc-node.ts). */
  readonly #sendSeq = new Map<PortId, number>();
  #sendSeqSweepAt = SEND_SEQ_SWEEP;

  constructor(ipc: NodeIpc, task: MessageTask, memory: OolMemory) {
    this.#ipc = ipc;
    this.#task = task;
    this.#memory = memory;
  }

  /** @internal For tests: how many destination ports this task keeps a sequence number for. */
  get sequencedPorts(): number { return this.#sendSeq.size; }

  /** What copyin of `name` by `disposition` would give (PortRights.copyinCheck), `name` refreshed first. */
  #check(name: number, disposition: number) {
    this.#task.refresh(name);
    return this.#task.rights.copyinCheck(name as PortName, disposition);
  }

  /**
   * mach_msg's send half. Checks the header, the rights and the memory first (an error then
   * means nothing happened); waits for a queue place unless sent through a send-once right;
   * then takes every right into the message and routes it.
   * Returns MACH_MSG_SUCCESS; MACH_SEND_INVALID_HEADER (also for a msgh_id outside 32 bits),
   * _INVALID_DEST (also when the destination's name is the reply's and cannot give both rights:
   * a send-once right twice, or two MOVE_SENDs from one uref), _INVALID_REPLY, _INVALID_DATA,
   * _INVALID_TYPE, _INVALID_RIGHT, _INVALID_MEMORY; MACH_SEND_TIMED_OUT when no queue place
   * came within `timeoutMs`; MACH_SEND_INTERRUPTED when `abort` (the calling thread's) fired first.
   */
  send(msg: MachMsgSend, timeoutMs: number, abort?: AbortSignal): number | Promise<number> {
    const first = this.#trySend(msg);
    if (typeof first === 'number') return first;
    if (abort?.aborted === true) return MACH_SEND_INTERRUPTED;
    // Mach's timeout 0 never waits: no deadline, no promise.
    if (timeoutMs === 0) return MACH_SEND_TIMED_OUT;
    return this.#sendBlocked(msg, first.full, timeoutMs, abort);
  }

  /**
   * The send of a message whose queue was full: the sender waits in line on this node
   * (blocked-senders.ts) until a place is handed to it, then everything is checked again
   * (rights may change while it waits) and it sends in that place, or gives it back.
   */
  async #sendBlocked(msg: MachMsgSend, dest: PortId, timeoutMs: number, abort: AbortSignal | undefined): Promise<number> {
    const { blocked } = this.#ipc;
    const deadline = new Deadline(this.#ipc.clock, timeoutMs, abort);
    let first = false;
    try {
      for (;;) {
        if (deadline.expired) return deadline.aborted ? MACH_SEND_INTERRUPTED : MACH_SEND_TIMED_OUT;
        const sender = blocked.block(dest, first, this.#task.taskPort);
        // One more look with this node's flag up: a place freed before it is found here, one
        // freed after it is handed to us.
        const again = this.#trySend(msg);
        if (typeof again === 'number' || again.full !== dest) {
          blocked.leave(sender);
          if (typeof again === 'number') return again;
          dest = again.full;
          continue;
        }
        const wakeup = await deadline.race(sender.woken, undefined);
        if (wakeup === undefined) {
          blocked.leave(sender);
          continue;
        }
        blocked.used(sender);
        const sent = this.#trySend(msg, wakeup === 'handed' ? dest : undefined);
        if (typeof sent === 'number') return sent;
        // Told to look again (a raised limit) and beaten to the place: this sender keeps its turn.
        first = sent.full === dest;
        dest = sent.full;
      }
    } finally {
      deadline.cancel();
    }
  }

  /**
   * The send when it need not wait: checks, takes a queue place (or uses `held`, one handed to
   * this sender for that port, giving it back if the message goes elsewhere or fails its
   * checks) and posts. Returns the kr, or the destination port when its queue is full.
   */
  #trySend(msg: MachMsgSend, held?: PortId): number | { full: PortId } {
    if (held !== undefined) this.#ipc.table.handedUsed(held);
    const checked = this.#checkSend(msg);
    // The handed place serves only a send through a send right to that same port.
    const usesHeld = typeof checked !== 'number' && !checked.sendOnce && checked.dest === held;
    if (held !== undefined && !usesHeld) this.#ipc.placeFreed(held);
    if (typeof checked === 'number') return checked;
    const { dest, sendOnce } = checked;
    if (sendOnce || usesHeld) return this.#post(msg, dest, sendOnce);
    const reserved = this.#ipc.table.reserve(dest);
    if (reserved === 'reserved') return this.#post(msg, dest, false);
    return reserved === 'dead' ? MACH_SEND_INVALID_DEST : { full: dest };
  }


  #checkSend(msg: MachMsgSend): number | { dest: PortId; sendOnce: boolean } {
    if (typeof msg !== 'object' || msg === null || !SEND_DISPOSITIONS.has(msg.remoteDisposition)) return MACH_SEND_INVALID_HEADER;
    const reply = msg.localPort ?? MACH_PORT_NULL;
    if (reply !== MACH_PORT_NULL && !SEND_DISPOSITIONS.has(msg.localDisposition ?? -1)) return MACH_SEND_INVALID_HEADER;
    // msgh_id is an integer_t: anything wider could not cross to another node.
    if (msg.id !== undefined && !(Number.isInteger(msg.id) && msg.id >= -(2 ** 31) && msg.id < 2 ** 31)) {
      return MACH_SEND_INVALID_HEADER;
    }
    if (msg.body !== undefined && !(msg.body instanceof Uint8Array)) return MACH_SEND_INVALID_DATA;
    const dest = this.#check(msg.remotePort, msg.remoteDisposition);
    const port = dest.kind === undefined || dest.kind === 'dead' ? null : dest.entry!.port!;
    // Of the kernel objects, the kernel's own reply ports and task and thread ports take messages
    // (kern/kobject.ts serves the latter); the host port and port sets do not.
    const kind = port === null ? undefined : this.#ipc.table.kind(port);
    if (port === null || !this.#ipc.table.isAlive(port) || kind === PortKind.PORT_SET || kind === PortKind.HOST) return MACH_SEND_INVALID_DEST;
    if (reply !== MACH_PORT_NULL && this.#check(reply, msg.localDisposition!).kr !== KERN_SUCCESS) return MACH_SEND_INVALID_REPLY;
    if (reply === msg.remotePort && !this.#headerPairFits(reply, msg.remoteDisposition, msg.localDisposition!)) {
      return MACH_SEND_INVALID_DEST;
    }
    for (const descriptor of msg.ports ?? []) {
      if (typeof descriptor !== 'object' || descriptor === null) return MACH_SEND_INVALID_TYPE;
      const { kr } = this.#check(descriptor.name, descriptor.disposition);
      if (kr === KERN_INVALID_VALUE) return MACH_SEND_INVALID_TYPE;
      if (kr !== KERN_SUCCESS) return MACH_SEND_INVALID_RIGHT;
    }
    for (const region of msg.ool ?? []) {
      if (typeof region !== 'object' || region === null) return MACH_SEND_INVALID_MEMORY;
    }
    return { dest: port, sendOnce: isSendOnceDisposition(msg.remoteDisposition) };
  }

  /**
   * Whether one name can give both header rights (xnu's ipc_right_copyin_two), each having been
   * checked alone: one send-once right cannot go twice, and two MOVE_SENDs need two urefs.
   */
  #headerPairFits(name: number, remote: number, local: number): boolean {
    if (remote === MACH_MSG_TYPE_MOVE_SEND_ONCE || local === MACH_MSG_TYPE_MOVE_SEND_ONCE) return false;
    if (remote !== MACH_MSG_TYPE_MOVE_SEND || local !== MACH_MSG_TYPE_MOVE_SEND) return true;
    return this.#task.rights.space.lookup(name as PortName)!.urefs >= 2;
  }

  /** Takes the rights and memory into a kernel message and routes it. */
  #post(msg: MachMsgSend, dest: PortId, sendOnce: boolean): number {
    const ool: OolRegion[] = msg.ool === undefined || msg.ool.length === 0 ? NO_REGIONS : [];
    for (const descriptor of msg.ool ?? []) {
      const captured = this.#memory.capture(descriptor);
      if (captured.region === undefined) {
        this.#ipc.kmsgs.releaseRegions(ool);
        if (!sendOnce) this.#ipc.placeFreed(dest);
        return MACH_SEND_INVALID_MEMORY;
      }
      ool.push(captured.region);
    }
    // Header first, as Mach copies it in, then the body's rights. Both header rights were
    // checked together (#headerPairFits); from one name a MOVE_SEND goes after the copy or
    // make beside it, which may need the right it takes.
    const replyName = msg.localPort ?? MACH_PORT_NULL;
    const replyFirst = replyName === msg.remotePort && msg.remoteDisposition === MACH_MSG_TYPE_MOVE_SEND;
    const early = replyFirst ? this.#takeReply(msg) : null;
    this.#task.rights.copyin(msg.remotePort as PortName, msg.remoteDisposition);
    const reply = replyFirst ? early : this.#takeReply(msg);
    const rights: RightInTransit[] = msg.ports === undefined || msg.ports.length === 0 ? NO_RIGHTS : [];
    for (const descriptor of msg.ports ?? []) {
      const { right } = this.#task.rights.copyin(descriptor.name as PortName, descriptor.disposition);
      if (right === null) {
        // The same name spent twice: the message is destroyed, as Mach does for body rights, its
        // destination right with it (a send-once one sends its notification: destroyMessage).
        const wreck: KMsg = { dest, sendOnce, reply, id: 0, body: new Uint8Array(0), rights, ool: [], sender: 0, seq: 0 };
        this.#ipc.destroyMessage(wreck);
        this.#ipc.kmsgs.releaseRegions(ool);
        return MACH_SEND_INVALID_RIGHT;
      }
      rights.push(right);
    }
    for (const descriptor of msg.ool ?? []) {
      if (descriptor.deallocate === true) this.#memory.deallocate(descriptor.address, descriptor.size);
    }
    const seq = sendOnce ? 0 : this.#nextSeq(dest);
    // The message must not share the sender's buffer, which it may reuse at once. A message
    // leaving this node is copied on its way (ring or structured clone), so only one that
    // stays here is copied now: one copy either way.
    const body = msg.body === undefined ? new Uint8Array(0)
      : this.#ipc.table.location(dest) === this.#ipc.node ? new Uint8Array(msg.body) : msg.body;
    this.#ipc.route({ dest, sendOnce, reply, id: msg.id ?? 0, body, rights, ool, sender: this.#task.taskPort, seq });
    return MACH_MSG_SUCCESS;
  }

  /** The header's reply right taken in (null for none). */
  #takeReply(msg: MachMsgSend): RightInTransit | null {
    const name = msg.localPort ?? MACH_PORT_NULL;
    return name === MACH_PORT_NULL ? null : this.#task.rights.copyin(name as PortName, msg.localDisposition!).right;
  }

  /**
   * The next sequence number of this task's messages to `dest`. Entries for dead ports are
   * swept out whenever the map doubles (a dead port receives nothing more, and its PortId is
   * never reused), so the map holds about the live ports this task sends to, at most the port
   * table's size, and a set never throws.
   */
  #nextSeq(dest: PortId): number {
    const seq = (this.#sendSeq.get(dest) ?? 0) + 1;
    if (seq === 1 && this.#sendSeq.size >= this.#sendSeqSweepAt) {
      for (const port of this.#sendSeq.keys()) if (!this.#ipc.table.isAlive(port)) this.#sendSeq.delete(port);
      this.#sendSeqSweepAt = Math.max(SEND_SEQ_SWEEP, 2 * this.#sendSeq.size);
    }
    this.#sendSeq.set(dest, seq);
    return seq;
  }

  /**
   * mach_msg's receive half on a receive right or port set `name`: waits (without spinning) up
   * to `timeoutMs` for a message, then copies its rights and memory out into this task. A right
   * whose port died while the message was queued arrives as MACH_PORT_DEAD.
   * `rcvSize` is the receive buffer in bytes (0: no limit, the message being allocated for the
   * receiver), measured against `messageSize`.
   * Returns MACH_MSG_SUCCESS with the message; MACH_RCV_TOO_LARGE with `size` for a message
   * larger than `rcvSize`: it stays queued under MACH_RCV_LARGE in `option`, else it is dequeued
   * and destroyed; MACH_RCV_INVALID_NAME; MACH_RCV_TIMED_OUT; MACH_RCV_IN_SET for a member of a
   * port set; MACH_RCV_PORT_DIED; MACH_RCV_PORT_CHANGED; MACH_RCV_INTERRUPTED when `abort` (the
   * calling thread's: thread_abort, thread_terminate) fired first; KERN_INVALID_ARGUMENT for an `rcvSize`
   * that is not a non-negative integer.
   */
  receive(name: number, timeoutMs: number, option = 0, rcvSize = 0, abort?: AbortSignal): Received | Promise<Received> {
    if (!Number.isSafeInteger(rcvSize) || rcvSize < 0) return { kr: KERN_INVALID_ARGUMENT };
    const large = (option & MACH_RCV_LARGE) !== 0;
    const limit: ReceiveLimit<KMsg> | undefined = rcvSize === 0 ? undefined
      : { fits: (kmsg) => messageSize(kmsg) <= rcvSize, large };
    const now = this.#poll(name, limit);
    if (now !== undefined) return this.#received(name, now, large);
    if (abort?.aborted === true) return { kr: MACH_RCV_INTERRUPTED };
    // Mach's timeout 0 never waits: no deadline, no promise.
    if (timeoutMs === 0) return { kr: MACH_RCV_TIMED_OUT };
    return this.#receiveBlocked(name, timeoutMs, limit, large, abort);
  }

  async #receiveBlocked(name: number, timeoutMs: number, limit: ReceiveLimit<KMsg> | undefined, large: boolean,
    abort: AbortSignal | undefined): Promise<Received> {
    const deadline = new Deadline(this.#ipc.clock, timeoutMs, abort);
    try {
      const result = await this.#dequeue(name, { deadline, limit });
      if (result.kr === MACH_RCV_TIMED_OUT && deadline.aborted) return { kr: MACH_RCV_INTERRUPTED };
      return this.#received(name, result, large);
    } finally {
      deadline.cancel();
    }
  }

  #received(name: number, result: { kr: number; msg?: KMsg; seqno?: number }, large: boolean): Received {
    return result.msg === undefined ? { kr: result.kr } : this.#copyout(name, result.kr, result.msg, result.seqno ?? 0, large);
  }

  /**
   * What the receive half gets without waiting: a message queued, or the answer for a name that
   * cannot be received from; undefined when it would wait (nothing queued, or the queue is still
   * on its way here).
   */
  #poll(name: number, limit: ReceiveLimit<KMsg> | undefined): { kr: number; msg?: KMsg; seqno?: number } | undefined {
    const { rights } = this.#task;
    const { port } = rights.receivePort(name as PortName);
    if (port !== undefined) {
      const local = this.#ipc.local(port);
      if (local !== undefined) return local.queue.poll(limit);
      return this.#ipc.table.isAlive(port) ? undefined : { kr: MACH_RCV_PORT_DIED };
    }
    const entry = rights.space.lookup(name as PortName);
    if (entry?.type !== MACH_PORT_TYPE_PORT_SET) return { kr: MACH_RCV_INVALID_NAME };
    const set = this.#ipc.portSet(entry.port!);
    return set === undefined ? { kr: MACH_RCV_PORT_DIED } : set.poll(limit);
  }

  /** Waits for the next message of the receive right or port set `name` (see receive). */
  async #dequeue(name: number, options: { deadline: Deadline; limit: ReceiveLimit<KMsg> | undefined }):
    Promise<{ kr: number; msg?: KMsg; seqno?: number }> {
    const { rights } = this.#task;
    const { port } = rights.receivePort(name as PortName);
    if (port !== undefined) {
      let local = this.#ipc.settled(port);
      // The queue may still be on its way to this node: that wait counts against the timeout.
      if (local instanceof Promise) local = await options.deadline.race(local, MACH_RCV_TIMED_OUT);
      if (typeof local === 'number') return { kr: local };
      if (this.#ipc.local(port) !== local || rights.receivePort(name as PortName).port !== port) {
        return { kr: MACH_RCV_PORT_CHANGED };
      }
      return local.queue.receive(options);
    }
    const entry = rights.space.lookup(name as PortName);
    if (entry?.type !== MACH_PORT_TYPE_PORT_SET) return { kr: MACH_RCV_INVALID_NAME };
    const set = this.#ipc.portSet(entry.port!);
    if (set === undefined) return { kr: MACH_RCV_PORT_DIED };
    return set.receive(options);
  }

  /** The message `kmsg` is received by `name`: its rights and memory are copied out into this task. */
  #copyout(name: number, kr: number, kmsg: KMsg, seqno: number, large: boolean): Received {
    const { rights } = this.#task;
    if (kr === MACH_RCV_TOO_LARGE) {
      // Under MACH_RCV_LARGE the message is still queued, only lent to read its size.
      if (!large) this.#ipc.dequeued(kmsg, { destroy: true });
      return { kr: MACH_RCV_TOO_LARGE, size: messageSize(kmsg) };
    }
    this.#ipc.dequeued(kmsg);
    const reply = kmsg.reply === null ? MACH_PORT_NULL : copyoutOrDestroy(this.#ipc, rights, kmsg.reply);
    const ports = kmsg.rights.map((right) => ({ name: copyoutOrDestroy(this.#ipc, rights, right), type: receivedType(right) }));
    const ool = kmsg.ool.map((region) => ({ address: this.#memory.map(region).address, size: region.size }));
    return {
      kr: MACH_MSG_SUCCESS,
      msg: {
        remotePort: reply, remoteType: kmsg.reply === null ? 0 : receivedType(kmsg.reply),
        localPort: rights.space.lookupPort(kmsg.dest) ?? name, id: kmsg.id, seqno,
        body: kmsg.body, ports, ool,
      },
    };
  }
}
