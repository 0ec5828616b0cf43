/**
 * A task's IPC state (Mach `ipc_space` plus the task's `itk_*` special ports): its port name
 * space, its send sequence numbers, its kernel port and special and registered ports, and the
 * mach_port_* and mach_msg routines as that task performs them. Routines validate everything,
 * then act, so a rejected call changes nothing.
 */
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_INVALID_NAME, KERN_INVALID_RIGHT,
  KERN_INVALID_VALUE, KERN_NAME_EXISTS, KERN_NO_SPACE, KERN_RIGHT_EXISTS, KERN_SUCCESS, KERN_UREFS_OVERFLOW,
  MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND,
  MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS,
  MACH_NOTIFY_PORT_DESTROYED, MACH_PORT_DEAD, MACH_PORT_LIMITS_INFO, MACH_PORT_NULL,
  MACH_PORT_QLIMIT_MAX, MACH_PORT_RECEIVE_STATUS, MACH_PORT_TYPE_DEAD_NAME,
  MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX, MACH_RCV_INVALID_NAME, MACH_RCV_LARGE,
  MACH_RCV_PORT_CHANGED, MACH_RCV_PORT_DIED, MACH_RCV_TIMED_OUT, MACH_RCV_TOO_LARGE,
  MACH_SEND_INVALID_DATA, MACH_SEND_INVALID_DEST, MACH_SEND_INVALID_HEADER,
  MACH_SEND_INVALID_MEMORY, MACH_SEND_INVALID_REPLY, MACH_SEND_INVALID_RIGHT,
  MACH_SEND_INVALID_TYPE, MACH_SEND_TIMED_OUT, TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT,
  TASK_HOST_PORT, TASK_KERNEL_PORT, TASK_PORT_REGISTER_MAX, TASK_SAMPLE_PORT,
} from '../../shared/constants.js';
import type { InheritedPorts } from '../../shared/protocol.js';
import type { TaskId, PortId, PortName } from '../../shared/types.js';
import { sanitizePortName } from './ipc-types.js';
import { nameBody, type NodeIpc } from './ipc-node.js';
import { isSendOnceDisposition, messageSize, neededRight, PORT_DISPOSITIONS, receivedType, SEND_DISPOSITIONS, transitKind } from './message.js';
import { PortKind } from './port-table.js';
import { NameSpace, newEntry, type NameRefusal } from './name-space.js';
import { systemClock, type ReceiveLimit } from './port.js';
import { destroyRightInTransit, PortRights } from './right.js';
import type { KMsg, MachMsgReceived, MachMsgSend, OolDescriptor, OolRegion, RightInTransit } from '../../shared/message.js';

/** The memory side of out-of-line regions, lent by the task's vm map. */
export interface OolMemory {
  /** Takes [address, address + size) into a message: a reference (share) or a private copy. */
  capture(descriptor: OolDescriptor): { kr: number; region?: OolRegion };
  /** Maps a region that arrived, adopting its reference. */
  map(region: OolRegion): { kr: number; address: number };
  deallocate(address: number, size: number): void;
}

/** What mach_port_insert_right answers for a name the space refuses (see NameSpace.refuseName). */
const NAME_REFUSALS: Readonly<Record<NameRefusal, number>> = {
  malformed: KERN_INVALID_VALUE, exists: KERN_NAME_EXISTS, far: KERN_NO_SPACE, full: KERN_NO_SPACE,
};

/** #sendSeq is swept of dead destinations whenever it reaches this size, or twice its last swept size. */
const SEND_SEQ_SWEEP = 1024;

const INHERITED_SPECIALS = [TASK_BOOTSTRAP_PORT, TASK_HOST_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT];
const SETTABLE_SPECIALS = new Set([TASK_KERNEL_PORT, ...INHERITED_SPECIALS]);

export interface ReceiveStatus {
  readonly mps_pset: number;
  readonly mps_seqno: number;
  readonly mps_mscount: number;
  readonly mps_qlimit: number;
  readonly mps_msgcount: number;
  readonly mps_srights: boolean;
  readonly mps_pdrequest: boolean;
  readonly mps_nsrequest: boolean;
}

export class TaskIpc {
  readonly task: TaskId;
  readonly space = new NameSpace();
  readonly rights: PortRights;
  readonly taskPort: PortId;
  readonly #ipc: NodeIpc;
  readonly #memory: OolMemory;
  /** This task's last sequence number per destination port (per-sender order, ipc-node.ts). */
  readonly #sendSeq = new Map<PortId, number>();
  #sendSeqSweepAt = SEND_SEQ_SWEEP;
  readonly #special = new Map<number, PortId>();
  #registered: (PortId | null)[] = [null, null, null];
  #kernelPortOverride: PortId | null = null;

  constructor(ipc: NodeIpc, task: TaskId, memory: OolMemory, inherited: InheritedPorts | null) {
    this.#ipc = ipc;
    this.task = task;
    this.#memory = memory;
    this.rights = new PortRights(this.space, ipc.opsFor(task));
    const port = ipc.createPort(PortKind.TASK, task);
    if (port === undefined) throw new RangeError('port table full');
    this.taskPort = port;
    // The task holds a send right to its own kernel port (mach_task_self).
    ipc.table.addSendRight(port);
    this.rights.copyout({ kind: 'send', portId: port });
    for (const [which, special] of inherited?.special ?? []) this.#special.set(which, special);
    if (inherited !== null) this.#registered = [...inherited.registered];
    // The inherited rights, held by no node on their way here (inheritable), are this node's now.
    for (const held of [...this.#special.values(), ...this.#registered]) if (held !== null) ipc.table.sendRightsHeld(held, 1);
  }

  /** @internal For tests: how many destination ports this task keeps a sequence number for. */
  get sequencedPorts(): number { return this.#sendSeq.size; }

  /** The name of the task's own kernel port in its space (mach_task_self). */
  get selfName(): PortName { return this.space.lookupPort(this.taskPort) ?? (MACH_PORT_NULL as PortName); }

  /**
   * Resolves once the queue of the receive right `name` is on this node (at once when it is, or
   * when `name` holds no receive right): requests and status on a port need its queue here.
   */
  async settleReceiveRight(name: number): Promise<void> {
    const entry = this.space.lookup(name as PortName);
    if (entry?.port == null || (entry.type & MACH_PORT_TYPE_RECEIVE) === 0 || this.#ipc.local(entry.port) !== undefined) return;
    await this.#ipc.settled(entry.port);
  }

  /** The task whose kernel port `name` holds a send right to, if it does and the task lives. */
  taskOfName(name: number): TaskId | undefined {
    this.#refresh(name);
    const entry = this.space.lookup(name as PortName);
    if (entry?.port == null || (entry.type & MACH_PORT_TYPE_SEND) === 0) return undefined;
    return this.#ipc.table.taskOf(entry.port);
  }

  /**
   * The ports a child of this task inherits, with a send right taken for it, held by no node
   * until the child's TaskIpc takes it (an image in flight survives its parent's node).
   */
  inheritable(): InheritedPorts {
    const take = (port: PortId | null | undefined) => {
      if (port == null || !this.#ipc.table.isAlive(port)) return null;
      this.#ipc.table.addSendRight(port, false);
      return port;
    };
    const special: [number, PortId][] = [];
    for (const which of INHERITED_SPECIALS) {
      const port = take(this.#special.get(which));
      if (port !== null) special.push([which, port]);
    }
    return { special, registered: this.#registered.map(take) };
  }

  /** A name whose port died is a dead name from now on (ports die on other nodes unannounced). */
  #refresh(name: number): void {
    const entry = this.space.lookup(name as PortName);
    if (entry?.port == null || (entry.type & (MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_SEND_ONCE)) === 0 ||
        (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0) return;
    if (!this.#ipc.table.isAlive(entry.port)) this.portDied(entry.port);
  }

  /** Converts every name of a dead port and sends the dead-name notifications requested. */
  portDied(port: PortId): void {
    for (const request of this.rights.portDied(port)) {
      this.#ipc.notify(request.notify, MACH_NOTIFY_DEAD_NAME, nameBody(request.name));
    }
  }

  allocate(right: number) { return this.rights.allocate(right); }

  deallocate(name: number) {
    this.#refresh(name);
    return this.rights.deallocate(name as PortName);
  }

  destroy(name: number) {
    this.#refresh(name);
    return this.rights.destroy(name as PortName);
  }

  modRefs(name: number, right: number, delta: number) {
    this.#refresh(name);
    return this.rights.modRefs(name as PortName, right, delta);
  }

  getRefs(name: number, right: number) {
    this.#refresh(name);
    return this.rights.getRefs(name as PortName, right);
  }

  type(name: number) {
    this.#refresh(name);
    return this.rights.type(name as PortName);
  }

  names() {
    for (const name of this.space.names()) this.#refresh(name);
    return this.rights.names();
  }

  moveMember(member: number, after: number) { return this.rights.moveMember(member as PortName, after as PortName); }

  /** What `name` would give for `disposition`, checked without taking it; undefined if nothing. */
  #peek(name: number, disposition: number): { port: PortId | null; dead: boolean } | undefined {
    this.#refresh(name);
    const entry = this.space.lookup(name as PortName);
    if (entry === undefined) return undefined;
    const needed = neededRight(disposition);
    if (entry.type === MACH_PORT_TYPE_DEAD_NAME) return needed === 'receive' ? undefined : { port: null, dead: true };
    const has = needed === 'receive' ? (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0
      : needed === 'send' ? (entry.type & MACH_PORT_TYPE_SEND) !== 0
      : entry.type === MACH_PORT_TYPE_SEND_ONCE;
    return has ? { port: entry.port, dead: false } : undefined;
  }

  /**
   * mach_port_insert_right: puts a right under the chosen `name`: taken from this task's own
   * name `poly` by disposition `polyPoly`, or a right the caller holds in transit.
   * Every condition is checked before the right is taken: on any error the caller keeps it
   * (the name `poly` is unchanged, a PortRight token stays usable).
   * Returns KERN_SUCCESS; KERN_INVALID_VALUE for a bad disposition or a name that cannot be
   * chosen (MACH_PORT_NULL, MACH_PORT_DEAD, a low byte of 0); KERN_INVALID_NAME /
   * KERN_INVALID_RIGHT when `poly` does not hold what `polyPoly` needs; KERN_INVALID_CAPABILITY
   * for a dead right; KERN_NAME_EXISTS when `name` is in use by another right, or its index is,
   * under another generation (xnu); KERN_RIGHT_EXISTS when the port is already named otherwise
   * here; KERN_UREFS_OVERFLOW; KERN_NO_SPACE when the space is full or `name` lies more than
   * 2^16 indices past the names in use (the table does not grow that far for one name).
   */
  insertRight(name: number, poly: number | RightInTransit, polyPoly: number): { kr: number } {
    const target = sanitizePortName(name);
    // A name's low byte is its generation, never 0 (name-space.ts): such a name cannot be chosen.
    if (target === undefined || target === MACH_PORT_NULL || target === MACH_PORT_DEAD || target % 256 === 0) {
      return { kr: KERN_INVALID_VALUE };
    }
    let kind: RightInTransit['kind'];
    let port: PortId | null;
    if (typeof poly === 'number') {
      if (!PORT_DISPOSITIONS.has(polyPoly)) return { kr: KERN_INVALID_VALUE };
      if (this.space.lookup(poly as PortName) === undefined) return { kr: KERN_INVALID_NAME };
      const peeked = this.#peek(poly, polyPoly);
      if (peeked === undefined) return { kr: KERN_INVALID_RIGHT };
      if (peeked.dead) return { kr: KERN_INVALID_CAPABILITY };
      kind = transitKind(polyPoly);
      port = peeked.port;
    } else {
      if (poly.kind === 'dead') return { kr: KERN_INVALID_CAPABILITY };
      kind = poly.kind;
      port = poly.portId;
    }
    if (!this.#ipc.table.isAlive(port!)) return { kr: KERN_INVALID_CAPABILITY };
    const existing = this.space.lookup(target);
    const named = kind === 'send-once' ? undefined : this.space.lookupPort(port!);
    if (named !== undefined && named !== target) return { kr: KERN_RIGHT_EXISTS };
    if (existing !== undefined) {
      // A send right joins the name of its port's send or receive right (the MAKE_SEND idiom
      // inserts one under the receive right's own name); a receive right joins its send name.
      const merges = existing.port === port && kind === 'send' &&
        (existing.type & (MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE)) !== 0;
      const addsReceive = existing.port === port && kind === 'receive' && existing.type === MACH_PORT_TYPE_SEND;
      if (!merges && !addsReceive) return { kr: KERN_NAME_EXISTS };
      if (merges && (existing.type & MACH_PORT_TYPE_SEND) !== 0 && existing.urefs >= MACH_PORT_UREFS_MAX) {
        return { kr: KERN_UREFS_OVERFLOW };
      }
    } else if (named === undefined) {
      const refusal = this.space.refuseName(target);
      if (refusal !== null) return { kr: NAME_REFUSALS[refusal] };
    }
    // Checked: now take the right and put it in place.
    const right = typeof poly === 'number' ? this.rights.copyin(poly as PortName, polyPoly).right! : poly;
    // Looked up again: moving a name's last uref into itself freed the name on the way.
    if (this.space.lookup(target) !== undefined || (kind !== 'send-once' && this.space.lookupPort(port!) !== undefined)) {
      this.rights.copyout(right);
    } else {
      const type = right.kind === 'send' ? MACH_PORT_TYPE_SEND : right.kind === 'receive' ? MACH_PORT_TYPE_RECEIVE : MACH_PORT_TYPE_SEND_ONCE;
      this.space.insertNamed(target, newEntry(type, port!, right.kind === 'receive' ? 0 : 1));
    }
    if (right.kind === 'receive') this.#ipc.receiveRightArrived(port!);
    return { kr: KERN_SUCCESS };
  }

  /**
   * mach_port_extract_right: takes a right out of this space as a message would carry it.
   * Returns KERN_SUCCESS with the right (now the caller's) and the type it is received as;
   * KERN_INVALID_NAME; KERN_INVALID_RIGHT; KERN_INVALID_VALUE for a bad disposition.
   */
  extractRight(name: number, msgtName: number): { kr: number; right?: RightInTransit; type?: number } {
    this.#refresh(name);
    const { kr, right } = this.rights.copyin(name as PortName, msgtName);
    return right === null ? { kr } : { kr, right, type: receivedType(right) };
  }

  /**
   * mach_port_request_notification for MACH_NOTIFY_DEAD_NAME (on a send, send-once or receive
   * right), MACH_NOTIFY_NO_SENDERS and MACH_NOTIFY_PORT_DESTROYED (on a receive right).
   * `notify` names a right giving a send-once right by `notifyPoly` (MACH_PORT_NULL cancels).
   * Returns KERN_SUCCESS with the previously registered send-once right's name (or
   * MACH_PORT_NULL); KERN_INVALID_NAME; KERN_INVALID_RIGHT for a right the variant does not
   * apply to; KERN_INVALID_VALUE for a bad variant, or a non-zero sync for port-destroyed;
   * KERN_INVALID_ARGUMENT for a dead-name request with sync 0 on a name already dead (a
   * non-zero sync has the notification sent at once, the name gaining a uref: GNU Mach, xnu);
   * KERN_UREFS_OVERFLOW when that dead name holds MACH_PORT_UREFS_MAX urefs;
   * KERN_INVALID_CAPABILITY when `notify` gives no send-once right.
   */
  requestNotification(name: number, variant: number, sync: number, notify: number, notifyPoly: number):
    { kr: number; previous: number } {
    const none = { previous: MACH_PORT_NULL };
    if (variant !== MACH_NOTIFY_DEAD_NAME && variant !== MACH_NOTIFY_NO_SENDERS && variant !== MACH_NOTIFY_PORT_DESTROYED) {
      return { kr: KERN_INVALID_VALUE, ...none };
    }
    if (!Number.isInteger(sync) || sync < 0) return { kr: KERN_INVALID_VALUE, ...none };
    this.#refresh(name);
    const entry = this.space.lookup(name as PortName);
    if (entry === undefined) return { kr: KERN_INVALID_NAME, ...none };
    const receive = (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0;
    if (variant === MACH_NOTIFY_DEAD_NAME ? entry.type === MACH_PORT_TYPE_PORT_SET : !receive) {
      return { kr: KERN_INVALID_RIGHT, ...none };
    }
    if (variant === MACH_NOTIFY_PORT_DESTROYED && sync !== 0) return { kr: KERN_INVALID_VALUE, ...none };
    const cancel = notify === MACH_PORT_NULL;
    if (!cancel && (notifyPoly !== MACH_MSG_TYPE_MAKE_SEND_ONCE && notifyPoly !== MACH_MSG_TYPE_MOVE_SEND_ONCE ||
        this.#peek(notify, notifyPoly)?.dead !== false)) return { kr: KERN_INVALID_CAPABILITY, ...none };
    // Checked before the notify right is taken, which a refused request must leave in place.
    if (variant === MACH_NOTIFY_DEAD_NAME && entry.type === MACH_PORT_TYPE_DEAD_NAME && !cancel) {
      if (sync === 0) return { kr: KERN_INVALID_ARGUMENT, ...none };
      if (entry.urefs >= MACH_PORT_UREFS_MAX) return { kr: KERN_UREFS_OVERFLOW, ...none };
    }
    const local = receive ? this.#ipc.local(entry.port!) : undefined;
    if (receive && variant !== MACH_NOTIFY_DEAD_NAME && local === undefined) return { kr: KERN_INVALID_RIGHT, ...none };
    const notifyPort = cancel ? null : (this.rights.copyin(notify as PortName, notifyPoly).right as { portId: PortId }).portId;
    let previous: PortId | null;
    if (variant === MACH_NOTIFY_DEAD_NAME) {
      previous = this.rights.requestDeadName(name as PortName, notifyPort, sync).previous;
    } else if (variant === MACH_NOTIFY_NO_SENDERS) {
      previous = local!.nsrequest?.notify ?? null;
      local!.nsrequest = notifyPort === null ? null : { notify: notifyPort, sync };
      this.#ipc.checkNoSenders(local!.id);
    } else {
      previous = local!.pdrequest;
      local!.pdrequest = notifyPort;
    }
    return { kr: KERN_SUCCESS, previous: previous === null ? MACH_PORT_NULL : this.#copyoutOrDestroy({ kind: 'send-once', portId: previous }) };
  }

  /**
   * Copies a right out of a message or the kernel into this space; one that cannot be named is
   * destroyed. A send or send-once right whose port died on the way arrives as MACH_PORT_DEAD
   * (ipc_object_copyout_dest), not as a fresh name that only later turns out dead.
   */
  #copyoutOrDestroy(right: RightInTransit): number {
    if (right.kind === 'dead') return MACH_PORT_DEAD;
    if (right.kind !== 'receive' && !this.#ipc.table.isAlive(right.portId)) {
      destroyRightInTransit(right, this.#ipc.kernelOps);
      return MACH_PORT_DEAD;
    }
    const { kr, name } = this.rights.copyout(right, { pegUrefs: true });
    if (kr === KERN_SUCCESS) {
      if (right.kind === 'receive') this.#ipc.receiveRightArrived(right.portId);
      return name;
    }
    destroyRightInTransit(right, this.#ipc.kernelOps);
    return MACH_PORT_NULL;
  }

  #receiveRight(name: number): { kr: number; port?: PortId } {
    const entry = this.space.lookup(name as PortName);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    if ((entry.type & MACH_PORT_TYPE_RECEIVE) === 0) return { kr: KERN_INVALID_RIGHT };
    return { kr: KERN_SUCCESS, port: entry.port! };
  }

  /**
   * mach_port_get_attributes: MACH_PORT_LIMITS_INFO ({ queue_limit }) or MACH_PORT_RECEIVE_STATUS.
   * Returns KERN_SUCCESS; KERN_INVALID_NAME; KERN_INVALID_RIGHT unless `name` is a receive right;
   * KERN_INVALID_ARGUMENT for another flavor.
   */
  getAttributes(name: number, flavor: number): { kr: number; info?: { queue_limit: number } | ReceiveStatus } {
    const { kr, port } = this.#receiveRight(name);
    if (port === undefined) return { kr };
    const table = this.#ipc.table;
    if (flavor === MACH_PORT_LIMITS_INFO) return { kr, info: { queue_limit: table.qlimit(port) } };
    if (flavor !== MACH_PORT_RECEIVE_STATUS) return { kr: KERN_INVALID_ARGUMENT };
    const local = this.#ipc.local(port);
    const entry = this.space.lookup(name as PortName)!;
    return {
      kr,
      info: {
        mps_pset: entry.inSet, mps_seqno: local?.queue.seqno ?? 0, mps_mscount: local?.queue.mscount ?? 0,
        mps_qlimit: table.qlimit(port), mps_msgcount: table.msgcount(port),
        mps_srights: table.sendRights(port) > 0, mps_pdrequest: local?.pdrequest != null,
        mps_nsrequest: local?.nsrequest != null,
      },
    };
  }

  /**
   * mach_port_set_attributes: MACH_PORT_LIMITS_INFO sets the queue limit (0..MACH_PORT_QLIMIT_MAX).
   * Returns KERN_SUCCESS; KERN_INVALID_NAME; KERN_INVALID_RIGHT; KERN_INVALID_VALUE for a limit
   * out of range; KERN_INVALID_ARGUMENT for another flavor.
   */
  setAttributes(name: number, flavor: number, info: unknown): { kr: number } {
    const { kr, port } = this.#receiveRight(name);
    if (port === undefined) return { kr };
    if (flavor !== MACH_PORT_LIMITS_INFO) return { kr: KERN_INVALID_ARGUMENT };
    const limit = (info as { queue_limit?: unknown } | null)?.queue_limit;
    if (!Number.isInteger(limit) || (limit as number) < 0 || (limit as number) > MACH_PORT_QLIMIT_MAX) return { kr: KERN_INVALID_VALUE };
    this.#ipc.table.setQlimit(port, limit as number);
    return { kr: KERN_SUCCESS };
  }

  /**
   * mach_msg's send half. Checks the header, the rights and the memory first (an error then
   * means nothing happened); waits for a queue place unless sent through a send-once right;
   * then takes every right into the message and routes it.
   * Returns MACH_MSG_SUCCESS; MACH_SEND_INVALID_HEADER (also for a msgh_id outside 32 bits),
   * _INVALID_DEST (also when the destination's name is the reply's and cannot give both rights:
   * a send-once right twice, or two MOVE_SENDs from one uref), _INVALID_REPLY, _INVALID_DATA,
   * _INVALID_TYPE, _INVALID_RIGHT, _INVALID_MEMORY; MACH_SEND_TIMED_OUT when no queue place
   * came within `timeoutMs`.
   */
  async send(msg: MachMsgSend, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const checked = this.#checkSend(msg);
      if (typeof checked === 'number') return checked;
      const { dest, sendOnce } = checked;
      if (sendOnce) return this.#post(msg, dest, true);
      const table = this.#ipc.table;
      // Read before reserving: a place freed between the two wakes the wait below at once.
      const wake = table.wakeCount(dest);
      const reserved = table.reserve(dest);
      if (reserved === 'dead') return MACH_SEND_INVALID_DEST;
      if (reserved === 'reserved') return this.#post(msg, dest, false);
      const remaining = deadline - performance.now();
      if (remaining <= 0) return MACH_SEND_TIMED_OUT;
      // Rights may change while we wait: everything is checked again on the next pass.
      await table.waitForPlace(dest, wake, remaining);
    }
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
    const dest = this.#peek(msg.remotePort, msg.remoteDisposition);
    if (dest === undefined || dest.dead || !this.#ipc.table.isAlive(dest.port!) ||
        this.#ipc.table.kind(dest.port!) !== PortKind.PORT) return MACH_SEND_INVALID_DEST;
    if (reply !== MACH_PORT_NULL && this.#peek(reply, msg.localDisposition!) === undefined) return MACH_SEND_INVALID_REPLY;
    if (reply === msg.remotePort && !this.#headerPairFits(reply, msg.remoteDisposition, msg.localDisposition!)) {
      return MACH_SEND_INVALID_DEST;
    }
    for (const descriptor of msg.ports ?? []) {
      if (typeof descriptor !== 'object' || descriptor === null || !PORT_DISPOSITIONS.has(descriptor.disposition)) {
        return MACH_SEND_INVALID_TYPE;
      }
      if (this.#peek(descriptor.name, descriptor.disposition) === undefined) return MACH_SEND_INVALID_RIGHT;
    }
    for (const region of msg.ool ?? []) {
      if (typeof region !== 'object' || region === null) return MACH_SEND_INVALID_MEMORY;
    }
    return { dest: dest.port!, sendOnce: isSendOnceDisposition(msg.remoteDisposition) };
  }

  /**
   * Whether one name can give both header rights (xnu's ipc_right_copyin_two), each having been
   * checked alone: one send-once right cannot go twice, and two MOVE_SENDs need two urefs.
   */
  #headerPairFits(name: number, remote: number, local: number): boolean {
    if (remote === MACH_MSG_TYPE_MOVE_SEND_ONCE || local === MACH_MSG_TYPE_MOVE_SEND_ONCE) return false;
    if (remote !== MACH_MSG_TYPE_MOVE_SEND || local !== MACH_MSG_TYPE_MOVE_SEND) return true;
    return this.space.lookup(name as PortName)!.urefs >= 2;
  }

  /** Takes the rights and memory into a kernel message and routes it. */
  #post(msg: MachMsgSend, dest: PortId, sendOnce: boolean): number {
    const ool: OolRegion[] = [];
    for (const descriptor of msg.ool ?? []) {
      const captured = this.#memory.capture(descriptor);
      if (captured.region === undefined) {
        this.#ipc.releaseRegions(ool);
        if (!sendOnce) this.#ipc.table.unreserve(dest);
        return MACH_SEND_INVALID_MEMORY;
      }
      ool.push(captured.region);
    }
    // Header first, as Mach copies it in, then the body's rights. Both header rights were
    // checked together (#headerPairFits); from one name a MOVE_SEND goes after the copy or
    // make beside it, which may need the right it takes.
    const replyName = msg.localPort ?? MACH_PORT_NULL;
    const replyFirst = replyName === msg.remotePort && msg.remoteDisposition === MACH_MSG_TYPE_MOVE_SEND;
    const takeReply = () => replyName === MACH_PORT_NULL ? null
      : this.rights.copyin(replyName as PortName, msg.localDisposition!).right;
    const early = replyFirst ? takeReply() : null;
    this.rights.copyin(msg.remotePort as PortName, msg.remoteDisposition);
    const reply = replyFirst ? early : takeReply();
    const rights: RightInTransit[] = [];
    for (const descriptor of msg.ports ?? []) {
      const { right } = this.rights.copyin(descriptor.name as PortName, descriptor.disposition);
      if (right === null) {
        // The same name spent twice: the message is destroyed, as Mach does for body rights, its
        // destination right with it (a send-once one sends its notification: destroyMessage).
        const wreck: KMsg = { dest, sendOnce, reply, id: 0, body: new Uint8Array(0), rights, ool: [], sender: 0, seq: 0 };
        this.#ipc.destroyMessage(wreck);
        this.#ipc.releaseRegions(ool);
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
    this.#ipc.route({ dest, sendOnce, reply, id: msg.id ?? 0, body, rights, ool, sender: this.taskPort, seq });
    return MACH_MSG_SUCCESS;
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
   * port set; MACH_RCV_PORT_DIED; MACH_RCV_PORT_CHANGED; KERN_INVALID_ARGUMENT for an `rcvSize`
   * that is not a non-negative integer.
   */
  async receive(name: number, timeoutMs: number, option = 0, rcvSize = 0):
    Promise<{ kr: number; msg?: MachMsgReceived; size?: number }> {
    if (!Number.isSafeInteger(rcvSize) || rcvSize < 0) return { kr: KERN_INVALID_ARGUMENT };
    const large = (option & MACH_RCV_LARGE) !== 0;
    const limit: ReceiveLimit<KMsg> | undefined = rcvSize === 0 ? undefined
      : { fits: (kmsg) => messageSize(kmsg) <= rcvSize, large };
    const entry = this.space.lookup(name as PortName);
    const timeout = timeoutMs === Infinity ? { limit } : { timeoutMs, limit };
    let result: { kr: number; msg?: KMsg; seqno?: number };
    if (entry !== undefined && (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0) {
      const port = entry.port!;
      const started = performance.now();
      let local = this.#ipc.settled(port);
      // The queue may still be on its way to this node: that wait counts against the timeout.
      if (local instanceof Promise) local = await withTimeout(local, timeoutMs, MACH_RCV_TIMED_OUT);
      if (typeof local === 'number') return { kr: local };
      const now = this.space.lookup(name as PortName);
      if (this.#ipc.local(port) !== local || now?.port !== port || (now.type & MACH_PORT_TYPE_RECEIVE) === 0) {
        return { kr: MACH_RCV_PORT_CHANGED };
      }
      const left = timeoutMs === Infinity ? { limit }
        : { timeoutMs: Math.max(0, timeoutMs - (performance.now() - started)), limit };
      result = await local.queue.receive(left);
    } else if (entry !== undefined && entry.type === MACH_PORT_TYPE_PORT_SET) {
      const set = this.#ipc.portSet(entry.port!);
      if (set === undefined) return { kr: MACH_RCV_PORT_DIED };
      result = await set.receive(timeout);
    } else {
      return { kr: MACH_RCV_INVALID_NAME };
    }
    if (result.msg === undefined) return { kr: result.kr };
    const kmsg = result.msg;
    if (result.kr === MACH_RCV_TOO_LARGE) {
      // Under MACH_RCV_LARGE the message is still queued, only lent to read its size.
      if (!large) this.#ipc.dequeued(kmsg, { destroy: true });
      return { kr: MACH_RCV_TOO_LARGE, size: messageSize(kmsg) };
    }
    this.#ipc.dequeued(kmsg);
    const reply = kmsg.reply === null ? MACH_PORT_NULL : this.#copyoutOrDestroy(kmsg.reply);
    const ports = kmsg.rights.map((right) => ({ name: this.#copyoutOrDestroy(right), type: receivedType(right) }));
    const ool = kmsg.ool.map((region) => ({ address: this.#memory.map(region).address, size: region.size }));
    return {
      kr: MACH_MSG_SUCCESS,
      msg: {
        remotePort: reply, remoteType: kmsg.reply === null ? 0 : receivedType(kmsg.reply),
        localPort: this.space.lookupPort(kmsg.dest) ?? name, id: kmsg.id, seqno: result.seqno ?? 0,
        body: kmsg.body, ports, ool,
      },
    };
  }

  /**
   * task_get_special_port: a send right to the special port `which`, named in this space
   * (MACH_PORT_NULL when none is set).
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown `which`.
   */
  getSpecialPort(which: number): { kr: number; name: number } {
    if (!SETTABLE_SPECIALS.has(which)) return { kr: KERN_INVALID_ARGUMENT, name: MACH_PORT_NULL };
    const port = which === TASK_KERNEL_PORT ? this.#kernelPortOverride ?? this.taskPort : this.#special.get(which);
    return { kr: KERN_SUCCESS, name: this.#sendRightName(port) };
  }

  #sendRightName(port: PortId | null | undefined): number {
    if (port == null) return MACH_PORT_NULL;
    if (!this.#ipc.table.isAlive(port)) return MACH_PORT_DEAD;
    this.#ipc.table.addSendRight(port);
    return this.#copyoutOrDestroy({ kind: 'send', portId: port });
  }

  /**
   * task_set_special_port: `which` becomes a copy of the send right `name` (MACH_PORT_NULL
   * clears it). Setting TASK_KERNEL_PORT changes what get returns, not the port the kernel uses.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown `which`; KERN_INVALID_NAME /
   * KERN_INVALID_RIGHT when `name` holds no send right.
   */
  setSpecialPort(which: number, name: number): { kr: number } {
    if (!SETTABLE_SPECIALS.has(which)) return { kr: KERN_INVALID_ARGUMENT };
    const taken = this.#takeSendRights([name]);
    if (typeof taken === 'number') return { kr: taken };
    const port = taken[0]!;
    const previous = which === TASK_KERNEL_PORT ? this.#kernelPortOverride : this.#special.get(which) ?? null;
    if (which === TASK_KERNEL_PORT) this.#kernelPortOverride = port;
    else if (port === null) this.#special.delete(which);
    else this.#special.set(which, port);
    if (previous !== null) this.#ipc.releaseSend(previous);
    return { kr: KERN_SUCCESS };
  }

  /** COPY_SEND of each name (MACH_PORT_NULL gives null), all checked before any is taken. */
  #takeSendRights(names: readonly number[]): number | (PortId | null)[] {
    for (const name of names) {
      if (name === MACH_PORT_NULL) continue;
      if (this.space.lookup(name as PortName) === undefined) return KERN_INVALID_NAME;
      if (this.#peek(name, MACH_MSG_TYPE_COPY_SEND) === undefined) return KERN_INVALID_RIGHT;
    }
    return names.map((name) => {
      if (name === MACH_PORT_NULL) return null;
      const { right } = this.rights.copyin(name as PortName, MACH_MSG_TYPE_COPY_SEND);
      return right?.kind === 'send' ? right.portId : null;
    });
  }

  /**
   * mach_ports_register: up to TASK_PORT_REGISTER_MAX send rights children inherit.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for too many; KERN_INVALID_NAME /
   * KERN_INVALID_RIGHT for a name without a send right.
   */
  register(names: readonly number[]): { kr: number } {
    if (!Array.isArray(names) || names.length > TASK_PORT_REGISTER_MAX) return { kr: KERN_INVALID_ARGUMENT };
    const taken = this.#takeSendRights(names);
    if (typeof taken === 'number') return { kr: taken };
    const previous = this.#registered;
    this.#registered = [0, 1, 2].map((index) => taken[index] ?? null);
    for (const port of previous) if (port !== null) this.#ipc.releaseSend(port);
    return { kr: KERN_SUCCESS };
  }

  /** mach_ports_lookup: the registered ports as send rights named in this space. */
  lookupRegistered(): { kr: number; names: number[] } {
    return { kr: KERN_SUCCESS, names: this.#registered.map((port) => this.#sendRightName(port)) };
  }

  /**
   * The task dies: every right in its space is destroyed (receive rights kill their ports,
   * send rights are released, send-once rights send their notifications), its special and
   * registered rights are released, and its kernel port dies.
   */
  terminate(): void {
    for (const name of this.space.names()) {
      if (this.space.lookup(name) !== undefined) this.rights.destroy(name);
    }
    for (const port of [...this.#special.values(), ...this.#registered, this.#kernelPortOverride]) {
      if (port != null) this.#ipc.releaseSend(port);
    }
    this.#special.clear();
    this.#registered = [null, null, null];
    this.#ipc.destroyPort(this.taskPort);
  }
}

/**
 * `promise`, or `expired` once `timeoutMs` passed first (no timer for Infinity). systemClock,
 * because Node's setTimeout fires any delay above 2^31 − 1 ms after 1 ms.
 */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, expired: number): Promise<T | number> {
  if (timeoutMs === Infinity) return promise;
  let timer: unknown;
  const timeout = new Promise<number>((resolve) => { timer = systemClock.setTimeout(() => resolve(expired), timeoutMs); });
  return Promise.race([promise, timeout]).finally(() => systemClock.clearTimeout(timer));
}

/** Releases the send rights an unadopted child's inherited ports held (held by no node: inheritable). */
export function releaseInherited(ipc: NodeIpc, inherited: InheritedPorts): void {
  for (const [, port] of inherited.special) ipc.releaseSend(port, false);
  for (const port of inherited.registered) if (port !== null) ipc.releaseSend(port, false);
}
