/**
 * A task's IPC space (Mach `ipc_space` plus the task's `itk_*` special ports): its port name
 * space, its kernel port and special and registered ports, and the mach_port_* routines as that
 * task performs them; its mach_msg is mach-msg.ts's. Routines validate everything, then act, so
 * a rejected call changes nothing.
 */
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_INVALID_NAME, KERN_INVALID_RIGHT,
  KERN_INVALID_VALUE, KERN_NAME_EXISTS, KERN_NO_SPACE, KERN_RIGHT_EXISTS, KERN_SUCCESS,
  KERN_UREFS_OVERFLOW, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_PORT_DESTROYED, MACH_PORT_DEAD,
  MACH_PORT_LIMITS_INFO, MACH_PORT_NULL, MACH_PORT_QLIMIT_MAX, MACH_PORT_RECEIVE_STATUS,
  MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX,
} from '../../shared/constants.js';
import type { InheritedPorts } from '../../shared/protocol.js';
import type { MachMsgReceived, MachMsgSend, RightInTransit } from '../../shared/message.js';
import type { TaskId, PortId, PortName } from '../../shared/types.js';
import type { NodeIpc } from './ipc-node.js';
import { sanitizePortName } from './ipc-types.js';
import { copyoutOrDestroy, MachMsg, receivedType, type OolMemory } from './mach-msg.js';
import { NameSpace, newEntry, type NameRefusal } from './name-space.js';
import { nameBody } from './notify.js';
import { PortKind } from './port-table.js';
import { PortRights } from './right.js';
import { SpecialPorts } from './special-ports.js';
import { ExceptionPorts } from './exception-ports.js';

/** What mach_port_insert_right answers for a name the space refuses (see NameSpace.refuseName). */
const NAME_REFUSALS: Readonly<Record<NameRefusal, number>> = {
  malformed: KERN_INVALID_VALUE, exists: KERN_NAME_EXISTS, far: KERN_NO_SPACE, full: KERN_NO_SPACE,
};

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
  readonly #msg: MachMsg;
  readonly #special: SpecialPorts;
  /** Per-type exception ports (exception-ports.ts). */
  readonly exceptions: ExceptionPorts;

  constructor(ipc: NodeIpc, task: TaskId, memory: OolMemory, inherited: InheritedPorts | null) {
    this.#ipc = ipc;
    this.task = task;
    this.rights = new PortRights(this.space, ipc.opsFor(task));
    this.#msg = new MachMsg(ipc, this, memory);
    const port = ipc.createPort(PortKind.TASK, task);
    if (port === undefined) throw new RangeError('port table full');
    this.taskPort = port;
    // The task holds a send right to its own kernel port (mach_task_self).
    ipc.table.addSendRight(port);
    this.rights.copyout({ kind: 'send', portId: port });
    this.#special = new SpecialPorts(ipc, this, inherited);
    this.exceptions = new ExceptionPorts(ipc, this, inherited?.exceptions);
  }

  /** @internal For tests: how many destination ports this task keeps a sequence number for. */
  get sequencedPorts(): number { return this.#msg.sequencedPorts; }

  /** The name of the task's own kernel port in its space (mach_task_self). */
  get selfName(): PortName { return this.space.lookupPort(this.taskPort) ?? (MACH_PORT_NULL as PortName); }

  /**
   * Resolves once the queue of the receive right `name` is on this node (at once when it is, or
   * when `name` holds no receive right): requests and status on a port need its queue here.
   */
  async settleReceiveRight(name: number): Promise<void> {
    const { port } = this.rights.receivePort(name as PortName);
    if (port === undefined || this.#ipc.local(port) !== undefined) return;
    await this.#ipc.settled(port);
  }

  /** The task whose kernel port `name` holds a send right to, if it does and the task lives. */
  taskOfName(name: number): TaskId | undefined {
    this.refresh(name);
    const entry = this.space.lookup(name as PortName);
    if (entry?.port == null || (entry.type & MACH_PORT_TYPE_SEND) === 0) return undefined;
    return this.#ipc.table.taskOf(entry.port);
  }

  /** A name whose port died is a dead name from now on (ports die on other nodes unannounced). */
  refresh(name: number): void {
    const entry = this.space.lookup(name as PortName);
    if (entry?.port == null || (entry.type & (MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_SEND_ONCE)) === 0 ||
        (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0) return;
    if (!this.#ipc.table.isAlive(entry.port)) this.portDied(entry.port);
  }

  /** Converts every name of a dead port and sends the dead-name notifications requested. */
  portDied(port: PortId): void {
    for (const request of this.rights.portDied(port)) {
      this.#ipc.notices.notify(request.notify, MACH_NOTIFY_DEAD_NAME, nameBody(request.name));
    }
  }

  allocate(right: number) { return this.rights.allocate(right); }

  deallocate(name: number) {
    this.refresh(name);
    return this.rights.deallocate(name as PortName);
  }

  destroy(name: number) {
    this.refresh(name);
    return this.rights.destroy(name as PortName);
  }

  modRefs(name: number, right: number, delta: number) {
    this.refresh(name);
    return this.rights.modRefs(name as PortName, right, delta);
  }

  getRefs(name: number, right: number) {
    this.refresh(name);
    return this.rights.getRefs(name as PortName, right);
  }

  type(name: number) {
    this.refresh(name);
    return this.rights.type(name as PortName);
  }

  names() {
    for (const name of this.space.names()) this.refresh(name);
    return this.rights.names();
  }

  moveMember(member: number, after: number) { return this.rights.moveMember(member as PortName, after as PortName); }

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
  /** What copyin of `name` by `disposition` would give (PortRights.copyinCheck), `name` refreshed first. */
  #check(name: number, disposition: number) {
    this.refresh(name);
    return this.rights.copyinCheck(name as PortName, disposition);
  }

  insertRight(name: number, poly: number | RightInTransit, polyPoly: number): { kr: number } {
    const target = sanitizePortName(name);
    // A name's low byte is its generation, never 0 (name-space.ts): such a name cannot be chosen.
    if (target === undefined || target === MACH_PORT_NULL || target === MACH_PORT_DEAD || target % 256 === 0) {
      return { kr: KERN_INVALID_VALUE };
    }
    let kind: RightInTransit['kind'];
    let port: PortId | null;
    if (typeof poly === 'number') {
      const check = this.#check(poly, polyPoly);
      if (check.kr !== KERN_SUCCESS) return { kr: check.kr };
      if (check.kind === 'dead') return { kr: KERN_INVALID_CAPABILITY };
      kind = check.kind!;
      port = check.entry!.port;
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
    this.refresh(name);
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
    this.refresh(name);
    const entry = this.space.lookup(name as PortName);
    if (entry === undefined) return { kr: KERN_INVALID_NAME, ...none };
    const receive = (entry.type & MACH_PORT_TYPE_RECEIVE) !== 0;
    if (variant === MACH_NOTIFY_DEAD_NAME ? entry.type === MACH_PORT_TYPE_PORT_SET : !receive) {
      return { kr: KERN_INVALID_RIGHT, ...none };
    }
    if (variant === MACH_NOTIFY_PORT_DESTROYED && sync !== 0) return { kr: KERN_INVALID_VALUE, ...none };
    const cancel = notify === MACH_PORT_NULL;
    const sendOnce = notifyPoly === MACH_MSG_TYPE_MAKE_SEND_ONCE || notifyPoly === MACH_MSG_TYPE_MOVE_SEND_ONCE;
    const given = cancel || !sendOnce ? undefined : this.#check(notify, notifyPoly).kind;
    if (!cancel && (given === undefined || given === 'dead')) return { kr: KERN_INVALID_CAPABILITY, ...none };
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
      previous = this.#ipc.notices.requestNoSenders(local!, notifyPort, sync);
    } else {
      previous = this.#ipc.notices.requestPortDestroyed(local!, notifyPort);
    }
    return { kr: KERN_SUCCESS, previous: previous === null ? MACH_PORT_NULL : this.#copyout({ kind: 'send-once', portId: previous }) };
  }

  /**
   * mach_port_get_attributes: MACH_PORT_LIMITS_INFO ({ queue_limit }) or MACH_PORT_RECEIVE_STATUS.
   * Returns KERN_SUCCESS; KERN_INVALID_NAME; KERN_INVALID_RIGHT unless `name` is a receive right;
   * KERN_INVALID_ARGUMENT for another flavor.
   */
  getAttributes(name: number, flavor: number): { kr: number; info?: { queue_limit: number } | ReceiveStatus } {
    const { kr, port } = this.rights.receivePort(name as PortName);
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
    const { kr, port } = this.rights.receivePort(name as PortName);
    if (port === undefined) return { kr };
    if (flavor !== MACH_PORT_LIMITS_INFO) return { kr: KERN_INVALID_ARGUMENT };
    const limit = (info as { queue_limit?: unknown } | null)?.queue_limit;
    if (!Number.isInteger(limit) || (limit as number) < 0 || (limit as number) > MACH_PORT_QLIMIT_MAX) return { kr: KERN_INVALID_VALUE };
    this.#ipc.table.setQlimit(port, limit as number);
    return { kr: KERN_SUCCESS };
  }

  /** The ports a child of this task inherits: see SpecialPorts.inheritable. */
  inheritable(): InheritedPorts { return { ...this.#special.inheritable(), exceptions: this.exceptions.inheritable() }; }

  /** The send right in the special slot `which`, if any (GNU's TASK_EXCEPTION_PORT for kern/exception.ts). */
  specialPort(which: number): PortId | undefined { return this.#special.port(which); }

  /** task_get_special_port: see SpecialPorts. */
  getSpecialPort(which: number): { kr: number; name: number } { return this.#special.get(which); }

  /** task_set_special_port: see SpecialPorts. */
  setSpecialPort(which: number, name: number): { kr: number } { return this.#special.set(which, name); }

  /** mach_ports_register: see SpecialPorts. */
  register(names: readonly number[]): { kr: number } { return this.#special.register(names); }

  /** mach_ports_lookup: see SpecialPorts. */
  lookupRegistered(): { kr: number; names: number[] } { return this.#special.lookupRegistered(); }

  /** mach_msg's send half: see MachMsg.send. */
  send(msg: MachMsgSend, timeoutMs: number, abort?: AbortSignal): number | Promise<number> { return this.#msg.send(msg, timeoutMs, abort); }

  /** mach_msg's receive half: see MachMsg.receive. */
  receive(name: number, timeoutMs: number, option = 0, rcvSize = 0, abort?: AbortSignal):
    { kr: number; msg?: MachMsgReceived; size?: number } | Promise<{ kr: number; msg?: MachMsgReceived; size?: number }> {
    return this.#msg.receive(name, timeoutMs, option, rcvSize, abort);
  }

  /** Copies `right` out into this space (see copyoutOrDestroy). */
  #copyout(right: RightInTransit): number { return copyoutOrDestroy(this.#ipc, this.rights, right); }

  /**
   * The task dies: every right in its space is destroyed (receive rights kill their ports,
   * send rights are released, send-once rights send their notifications), its special and
   * registered rights are released, and its kernel port dies.
   */
  terminate(): void {
    // Its blocked sends end first: a dead task must not hold a place in any line.
    this.#ipc.blocked.forget(this.taskPort);
    for (const name of this.space.names()) {
      if (this.space.lookup(name) !== undefined) this.rights.destroy(name);
    }
    this.#special.release();
    this.exceptions.release();
    this.#ipc.destroyPort(this.taskPort);
  }
}
