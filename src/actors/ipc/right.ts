/**
 * Port rights in one task's name space: the mach_port_* routines and the copyin/copyout of
 * rights by message disposition (Mach `ipc_right` and `mach_port.c`). Every routine validates
 * first and returns a kr; a rejected call changes nothing. Effects on ports go through the
 * injected `PortOps`, after the space has committed its own change.
 */
import { ok as assert } from 'node:assert/strict';
import {
  KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_INVALID_VALUE, KERN_NO_SPACE,
  KERN_NOT_IN_SET, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, KERN_UREFS_OVERFLOW,
  MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_PORT_RIGHT_DEAD_NAME,
  MACH_PORT_RIGHT_PORT_SET, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND,
  MACH_PORT_RIGHT_SEND_ONCE, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_DNREQUEST,
  MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND, MACH_PORT_TYPE_SEND_ONCE,
  MACH_PORT_UREFS_MAX,
} from '../../shared/constants.js';
import { PORT_NAME_DEAD, PORT_NAME_NULL, type PortOps } from './ipc-types.js';
import { MACH_PORT_TYPE_SEND_RECEIVE, NameSpace, newEntry, type IpcEntry } from './name-space.js';
import { RightEdit, type DeadNameRequest, type DnrequestResult } from './right-edit.js';
import type { RightInTransit } from '../../shared/message.js';
import type { PortId, PortName } from '../../shared/types.js';

export interface KrResult { readonly kr: number }
export interface NameResult extends KrResult { readonly name: PortName }
export interface RefsResult extends KrResult { readonly refs: number }
export interface TypeResult extends KrResult { readonly type: number }
export interface NamesResult extends KrResult {
  readonly names: readonly PortName[];
  readonly types: readonly number[];
}
export interface SetStatusResult extends KrResult { readonly members: readonly PortName[] }
export interface CopyinResult extends KrResult { readonly right: RightInTransit | null }

/** MACH_PORT_TYPE(right) = 1 << (right + 16). */
function typeOfRight(right: number): number {
  return 2 ** (right + 16);
}

function isPortRight(right: number): boolean {
  return Number.isInteger(right) && right >= MACH_PORT_RIGHT_SEND &&
    right <= MACH_PORT_RIGHT_DEAD_NAME;
}

const DISPOSITIONS: ReadonlySet<number> = new Set([
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
]);

const fail = <T extends object>(kr: number, out: T): KrResult & T => ({ kr, ...out });

/**
 * The mach_port_* routines on one task's name space. `ops` reaches the ports; it is per space.
 */
export class PortRights {
  readonly #space: NameSpace;
  readonly #ops: PortOps;

  constructor(space: NameSpace, ops: PortOps) {
    this.#space = space;
    this.#ops = ops;
  }

  /** The name table underneath (read-only use: lookups, `verify`). */
  get space(): NameSpace {
    return this.#space;
  }

  /**
   * mach_port_allocate: a new receive right (a new port), an empty port set, or a dead name
   * with 1 uref, under a new name.
   * Conditions: for RECEIVE and PORT_SET, calls `ops.createPort`/`createPortSet` once.
   * Returns: KERN_SUCCESS and the name; KERN_INVALID_VALUE for any other `right`;
   * KERN_NO_SPACE when the space is full; KERN_RESOURCE_SHORTAGE when no port could be made.
   */
  allocate(right: number): NameResult {
    const none = { name: PORT_NAME_NULL };
    if (right !== MACH_PORT_RIGHT_RECEIVE && right !== MACH_PORT_RIGHT_PORT_SET &&
        right !== MACH_PORT_RIGHT_DEAD_NAME) return fail(KERN_INVALID_VALUE, none);
    if (this.#space.full) return fail(KERN_NO_SPACE, none);
    if (right === MACH_PORT_RIGHT_DEAD_NAME) {
      return { kr: KERN_SUCCESS, name: this.#space.insert(newEntry(MACH_PORT_TYPE_DEAD_NAME, null, 1)) };
    }
    const receive = right === MACH_PORT_RIGHT_RECEIVE;
    const id = receive ? this.#ops.createPort() : this.#ops.createPortSet();
    if (id === undefined) return fail(KERN_RESOURCE_SHORTAGE, none);
    const type = receive ? MACH_PORT_TYPE_RECEIVE : MACH_PORT_TYPE_PORT_SET;
    return { kr: KERN_SUCCESS, name: this.#space.insert(newEntry(type, id, 0)) };
  }

  /**
   * mach_port_deallocate: drops one uref from the send right, send-once right or dead name
   * `name`; the right goes at 0 (a send-once right always goes, and its port is told).
   * Returns: KERN_SUCCESS; KERN_INVALID_NAME when `name` denotes nothing (GNU Mach; xnu's page
   * says success); KERN_INVALID_RIGHT for a receive-only name or a port set.
   */
  deallocate(name: PortName): KrResult {
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    const edit = new RightEdit(this.#space, this.#ops);
    if (entry.type === MACH_PORT_TYPE_SEND_ONCE) edit.destroySendOnce(name, entry);
    else if (entry.type & MACH_PORT_TYPE_SEND) edit.setSendUrefs(name, entry, entry.urefs - 1);
    else if (entry.type === MACH_PORT_TYPE_DEAD_NAME) edit.setDeadUrefs(name, entry, entry.urefs - 1);
    else return { kr: KERN_INVALID_RIGHT };
    return edit.commit({ kr: KERN_SUCCESS });
  }

  /**
   * mach_port_destroy: removes every right under `name` and frees the name. A receive right
   * makes its port die; a port set releases its members; a send-once right sends its port a
   * send-once notification; a dead-name request gets MACH_NOTIFY_PORT_DELETED.
   * Returns: KERN_SUCCESS; KERN_INVALID_NAME when `name` denotes nothing.
   */
  destroy(name: PortName): KrResult {
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    const edit = new RightEdit(this.#space, this.#ops);
    const { type, port } = entry;
    if (type === MACH_PORT_TYPE_PORT_SET) {
      edit.destroySet(name, entry);
    } else if (type === MACH_PORT_TYPE_SEND_ONCE) {
      edit.destroySendOnce(name, entry);
    } else if (type === MACH_PORT_TYPE_DEAD_NAME) {
      this.#space.remove(name);
    } else {
      edit.removeName(name, entry);
      // Mach order (ipc_right_destroy): the send right goes first, then the port dies.
      if (type & MACH_PORT_TYPE_SEND) edit.push(() => this.#ops.releaseSend(port!));
      if (type & MACH_PORT_TYPE_RECEIVE) edit.push(() => this.#ops.destroyReceive(port!));
    }
    return edit.commit({ kr: KERN_SUCCESS });
  }

  /**
   * mach_port_mod_refs: adds `delta` to the urefs `name` holds for `right`. Receive, port-set and
   * send-once rights hold exactly one, so only 0 and −1 apply to them; reaching 0 destroys the
   * right (a receive right's port dies and a send right sharing its name becomes a dead name).
   * Returns: KERN_SUCCESS; KERN_INVALID_VALUE for a bad `right`, a non-integer `delta`, a result
   * below 0, or a delta other than 0/−1 on a one-uref right; KERN_INVALID_NAME when `name`
   * denotes nothing; KERN_INVALID_RIGHT when it does not hold `right`; KERN_UREFS_OVERFLOW when
   * the result would pass MACH_PORT_UREFS_MAX.
   */
  modRefs(name: PortName, right: number, delta: number): KrResult {
    if (!isPortRight(right) || !Number.isSafeInteger(delta)) return { kr: KERN_INVALID_VALUE };
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    if ((entry.type & typeOfRight(right)) === 0) return { kr: KERN_INVALID_RIGHT };
    const edit = new RightEdit(this.#space, this.#ops);
    if (right === MACH_PORT_RIGHT_SEND || right === MACH_PORT_RIGHT_DEAD_NAME) {
      const urefs = entry.urefs + delta;
      if (urefs < 0) return { kr: KERN_INVALID_VALUE };
      if (urefs > MACH_PORT_UREFS_MAX) return { kr: KERN_UREFS_OVERFLOW };
      if (right === MACH_PORT_RIGHT_SEND) edit.setSendUrefs(name, entry, urefs);
      else edit.setDeadUrefs(name, entry, urefs);
      return edit.commit({ kr: KERN_SUCCESS });
    }
    if (delta === 0) return { kr: KERN_SUCCESS };
    if (delta !== -1) return { kr: KERN_INVALID_VALUE };
    if (right === MACH_PORT_RIGHT_SEND_ONCE) edit.destroySendOnce(name, entry);
    else if (right === MACH_PORT_RIGHT_PORT_SET) edit.destroySet(name, entry);
    else edit.destroyReceiveRight(name, entry);
    return edit.commit({ kr: KERN_SUCCESS });
  }

  /**
   * mach_port_get_refs: the urefs `name` holds for `right`: a send right's or dead name's count,
   * 1 for a receive, port-set or send-once right, 0 when the name holds some other right.
   * Returns: KERN_SUCCESS; KERN_INVALID_VALUE for a bad `right`; KERN_INVALID_NAME.
   */
  getRefs(name: PortName, right: number): RefsResult {
    if (!isPortRight(right)) return fail(KERN_INVALID_VALUE, { refs: 0 });
    const entry = this.#space.lookup(name);
    if (entry === undefined) return fail(KERN_INVALID_NAME, { refs: 0 });
    if ((entry.type & typeOfRight(right)) === 0) return { kr: KERN_SUCCESS, refs: 0 };
    const counted = right === MACH_PORT_RIGHT_SEND || right === MACH_PORT_RIGHT_DEAD_NAME;
    return { kr: KERN_SUCCESS, refs: counted ? entry.urefs : 1 };
  }

  /**
   * mach_port_type: the MACH_PORT_TYPE_* bits of `name`, with MACH_PORT_TYPE_DNREQUEST when a
   * dead-name request is registered.
   * Returns: KERN_SUCCESS; KERN_INVALID_NAME.
   */
  type(name: PortName): TypeResult {
    const entry = this.#space.lookup(name);
    if (entry === undefined) return fail(KERN_INVALID_NAME, { type: 0 });
    return { kr: KERN_SUCCESS, type: typeBits(entry) };
  }

  /**
   * mach_port_names: every name in the space, ascending, with its type bits.
   * Returns: KERN_SUCCESS.
   */
  names(): NamesResult {
    const names = this.#space.names();
    return { kr: KERN_SUCCESS, names, types: names.map((n) => typeBits(this.#space.lookup(n)!)) };
  }

  /**
   * mach_port_move_member: puts the receive right `member` into the port set `after`, taking it
   * out of any set it was in (a port belongs to one set at most, as in KP and GNU Mach), or takes
   * it out of its set when `after` is MACH_PORT_NULL.
   * Returns: KERN_SUCCESS; KERN_INVALID_NAME when either name denotes nothing;
   * KERN_INVALID_RIGHT when `member` holds no receive right or `after` is not a port set;
   * KERN_NOT_IN_SET when `after` is MACH_PORT_NULL and `member` is in no set.
   */
  moveMember(member: PortName, after: PortName): KrResult {
    const entry = this.#space.lookup(member);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    const set = after === PORT_NAME_NULL ? null : this.#space.lookup(after);
    if (set === undefined) return { kr: KERN_INVALID_NAME };
    if ((entry.type & MACH_PORT_TYPE_RECEIVE) === 0) return { kr: KERN_INVALID_RIGHT };
    if (set !== null && set.type !== MACH_PORT_TYPE_PORT_SET) return { kr: KERN_INVALID_RIGHT };
    if (set === null && entry.inSet === PORT_NAME_NULL) return { kr: KERN_NOT_IN_SET };
    if (entry.inSet === after) return { kr: KERN_SUCCESS };
    if (entry.inSet !== PORT_NAME_NULL) this.#space.lookup(entry.inSet)!.members!.delete(member);
    set?.members!.add(member);
    entry.inSet = after;
    this.#ops.setMembership(entry.port!, set === null ? null : set.port);
    return { kr: KERN_SUCCESS };
  }

  /**
   * mach_port_get_set_status: the member names of the port set `name`, in joining order.
   * Returns: KERN_SUCCESS; KERN_INVALID_NAME; KERN_INVALID_RIGHT when `name` is not a port set.
   */
  getSetStatus(name: PortName): SetStatusResult {
    const entry = this.#space.lookup(name);
    if (entry === undefined) return fail(KERN_INVALID_NAME, { members: [] });
    if (entry.type !== MACH_PORT_TYPE_PORT_SET) return fail(KERN_INVALID_RIGHT, { members: [] });
    return { kr: KERN_SUCCESS, members: [...entry.members!] };
  }

  /**
   * mach_port_request_notification for MACH_NOTIFY_DEAD_NAME: registers the send-once right
   * `notify` (already copied in) to learn of the death of the port `name` names, or cancels the
   * registration when `notify` is null. On a name that is already dead, a non-zero `sync` asks
   * for the notification at once, and the name gains one uref; with `sync` 0 the request is
   * refused (GNU Mach's and xnu's ipc_right_dnrequest).
   * Conditions: consumes `notify` on success only; on failure the caller still owns it.
   * Returns: KERN_SUCCESS and the previous registration, which the caller now owns;
   * KERN_INVALID_NAME; KERN_INVALID_RIGHT for a port set; KERN_INVALID_ARGUMENT for a dead name
   * with `sync` 0; KERN_UREFS_OVERFLOW when a dead name already holds MACH_PORT_UREFS_MAX urefs.
   */
  requestDeadName(name: PortName, notify: PortId | null, sync = 0): DnrequestResult {
    return new RightEdit(this.#space, this.#ops).requestDeadName(name, notify, sync);
  }

  /**
   * What copyin of `name` by `disposition` would take, checked without taking it (one rule for
   * copyin itself, mach_msg's checks before anything is taken, and insert_right):
   * MOVE_RECEIVE, MAKE_SEND and MAKE_SEND_ONCE need the receive right; COPY_SEND and MOVE_SEND a
   * send right; MOVE_SEND_ONCE a send-once right; a dead name given to COPY_SEND, MOVE_SEND or
   * MOVE_SEND_ONCE yields a dead right.
   * Returns: KERN_SUCCESS with the entry and the kind of right copyin would give ('dead' for a
   * dead name); KERN_INVALID_VALUE for another disposition; KERN_INVALID_NAME; KERN_INVALID_RIGHT
   * when the name holds no right the disposition accepts.
   */
  copyinCheck(name: PortName, disposition: number): KrResult & { entry?: IpcEntry; kind?: RightInTransit['kind'] } {
    if (!DISPOSITIONS.has(disposition)) return { kr: KERN_INVALID_VALUE };
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    const { type } = entry;
    const dead = type === MACH_PORT_TYPE_DEAD_NAME;
    let has: boolean;
    let kind: RightInTransit['kind'];
    switch (disposition) {
      case MACH_MSG_TYPE_MOVE_RECEIVE: case MACH_MSG_TYPE_MAKE_SEND: case MACH_MSG_TYPE_MAKE_SEND_ONCE:
        has = (type & MACH_PORT_TYPE_RECEIVE) !== 0;
        kind = disposition === MACH_MSG_TYPE_MOVE_RECEIVE ? 'receive' : disposition === MACH_MSG_TYPE_MAKE_SEND ? 'send' : 'send-once';
        break;
      case MACH_MSG_TYPE_COPY_SEND: case MACH_MSG_TYPE_MOVE_SEND:
        has = dead || (type & MACH_PORT_TYPE_SEND) !== 0;
        kind = dead ? 'dead' : 'send';
        break;
      default: // MACH_MSG_TYPE_MOVE_SEND_ONCE
        has = dead || type === MACH_PORT_TYPE_SEND_ONCE;
        kind = dead ? 'dead' : 'send-once';
    }
    return has ? { kr: KERN_SUCCESS, entry, kind } : { kr: KERN_INVALID_RIGHT };
  }

  /**
   * Takes the right `name` holds out of the space as a message disposition would
   * (`ipc_right_copyin`), if `copyinCheck` allows; a dead name yields a dead right (MOVE_*
   * consume a uref).
   * Conditions: the returned right is owned by the caller (copy it out, or destroy it with
   * `destroyRightInTransit`). A name that stops denoting its right sends port-deleted to its
   * dead-name request.
   * Returns: KERN_SUCCESS and the right; otherwise what copyinCheck returns, with no right.
   */
  copyin(name: PortName, disposition: number): CopyinResult {
    const { kr, entry, kind } = this.copyinCheck(name, disposition);
    if (entry === undefined || kind === undefined) return fail(kr, { right: null });
    const port = entry.port!;
    const edit = new RightEdit(this.#space, this.#ops);
    if (kind === 'dead') {
      if (disposition !== MACH_MSG_TYPE_COPY_SEND) edit.setDeadUrefs(name, entry, entry.urefs - 1);
      return edit.commit({ kr: KERN_SUCCESS, right: { kind } });
    }
    switch (disposition) {
      case MACH_MSG_TYPE_MAKE_SEND: edit.push(() => this.#ops.makeSend(port)); break;
      case MACH_MSG_TYPE_MAKE_SEND_ONCE: edit.push(() => this.#ops.makeSendOnce(port)); break;
      case MACH_MSG_TYPE_MOVE_RECEIVE:
        edit.leaveSet(name, entry);
        if (entry.type & MACH_PORT_TYPE_SEND) this.#space.setType(name, MACH_PORT_TYPE_SEND);
        else edit.removeName(name, entry);
        edit.push(() => this.#ops.clearReceiver(port));
        break;
      case MACH_MSG_TYPE_COPY_SEND: case MACH_MSG_TYPE_MOVE_SEND:
        if (disposition === MACH_MSG_TYPE_COPY_SEND || entry.urefs > 1) {
          // A new send right is split off; MOVE_SEND gives up the uref it came from.
          if (disposition === MACH_MSG_TYPE_MOVE_SEND) entry.urefs--;
          edit.push(() => this.#ops.copySend(port));
        } else {
          edit.dropLastSend(name, entry); // the name's own right travels
        }
        break;
      default: // MACH_MSG_TYPE_MOVE_SEND_ONCE
        edit.removeName(name, entry);
    }
    return edit.commit({ kr: KERN_SUCCESS, right: { kind, portId: port } });
  }

  /**
   * The port of the receive right `name` holds.
   * Returns: KERN_SUCCESS and the port; KERN_INVALID_NAME; KERN_INVALID_RIGHT when `name` holds
   * no receive right.
   */
  receivePort(name: PortName): KrResult & { port?: PortId } {
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME };
    if ((entry.type & MACH_PORT_TYPE_RECEIVE) === 0) return { kr: KERN_INVALID_RIGHT };
    return { kr: KERN_SUCCESS, port: entry.port! };
  }

  /**
   * Puts a right in transit into the space (`ipc_right_copyout`). A send right joins the name
   * that already holds a send or receive right for its port (one more uref; the two send rights
   * merge, so the port loses one); a receive right joins the port's send name; a send-once right
   * always gets a new name; a dead right gets no entry and reads as MACH_PORT_DEAD.
   * Conditions: consumes `right` on success. With `pegUrefs` (message receive) a send right
   * arriving at a name with MACH_PORT_UREFS_MAX urefs is released and the count stays pegged;
   * without it the call fails and the caller keeps the right.
   * Returns: KERN_SUCCESS and the name; KERN_NO_SPACE when a new name is needed and the space is
   * full; KERN_UREFS_OVERFLOW as above.
   */
  copyout(right: RightInTransit, options: { pegUrefs?: boolean } = {}): NameResult {
    const none = { name: PORT_NAME_NULL };
    if (right.kind === 'dead') return { kr: KERN_SUCCESS, name: PORT_NAME_DEAD };
    const port = right.portId;
    const existing = right.kind === 'send-once' ? undefined : this.#space.lookupPort(port);
    if (existing === undefined) {
      if (this.#space.full) return fail(KERN_NO_SPACE, none);
      const entry = right.kind === 'send' ? newEntry(MACH_PORT_TYPE_SEND, port, 1)
        : right.kind === 'receive' ? newEntry(MACH_PORT_TYPE_RECEIVE, port, 0)
        : newEntry(MACH_PORT_TYPE_SEND_ONCE, port, 1);
      return { kr: KERN_SUCCESS, name: this.#space.insert(entry) };
    }
    const entry = this.#space.lookup(existing)!;
    if (right.kind === 'receive') {
      assert(entry.type === MACH_PORT_TYPE_SEND, `receive right for port ${port} arrived twice`);
      this.#space.setType(existing, MACH_PORT_TYPE_SEND_RECEIVE);
    } else if (entry.type & MACH_PORT_TYPE_SEND) {
      if (entry.urefs >= MACH_PORT_UREFS_MAX && options.pegUrefs !== true) {
        return fail(KERN_UREFS_OVERFLOW, none);
      }
      entry.urefs = Math.min(entry.urefs + 1, MACH_PORT_UREFS_MAX);
      this.#ops.releaseSend(port);
    } else {
      this.#space.setType(existing, MACH_PORT_TYPE_SEND_RECEIVE);
      entry.urefs = 1;
    }
    return { kr: KERN_SUCCESS, name: existing };
  }

  /**
   * The port `port` died: every send and send-once right this space holds for it becomes a dead
   * name keeping its urefs. A name with a dead-name request gains one more uref (pegged at
   * MACH_PORT_UREFS_MAX) and loses the request, which is returned for the caller to send
   * MACH_NOTIFY_DEAD_NAME to. Idempotent.
   * Conditions: this space holds no receive right for `port`. Calls no `PortOps`.
   */
  portDied(port: PortId): DeadNameRequest[] {
    return new RightEdit(this.#space, this.#ops).portDied(port);
  }
}

function typeBits(entry: IpcEntry): number {
  return entry.type + (entry.dnrequest !== null ? MACH_PORT_TYPE_DNREQUEST : 0);
}

