/**
 * One change to a task's name space (Mach `ipc_right`'s entry edits): the space is edited at
 * once, and the port effects the edit makes are held back until `commit`, after the whole
 * change is made: `ops` calls in the order the change made them, then notifications to
 * dead-name requests (xnu sends port-deleted last). A routine validates first, then makes one
 * RightEdit, so a rejected call changes nothing.
 */
import { ok as assert } from 'node:assert/strict';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_SUCCESS, KERN_UREFS_OVERFLOW,
  MACH_PORT_TYPE_PORT_SET, MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_PORT_DELETED,
  MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND, MACH_PORT_UREFS_MAX,
} from '../../shared/constants.js';
import { PORT_NAME_NULL, type PortOps } from './ipc-types.js';
import type { IpcEntry, NameSpace } from './name-space.js';
import type { RightInTransit } from '../../shared/message.js';
import type { PortId, PortName } from '../../shared/types.js';

export interface DnrequestResult { readonly kr: number; readonly previous: PortId | null }
/** A name that became dead with a dead-name request: send MACH_NOTIFY_DEAD_NAME to `notify`. */
export interface DeadNameRequest { readonly name: PortName; readonly notify: PortId }

export class RightEdit {
  readonly #space: NameSpace;
  readonly #ops: PortOps;
  readonly #calls: Array<() => void> = [];
  readonly #notices: Array<() => void> = [];

  constructor(space: NameSpace, ops: PortOps) {
    this.#space = space;
    this.#ops = ops;
  }

  /** PortRights.requestDeadName (ipc_right_dnrequest); its port effects are made at once. */
  requestDeadName(name: PortName, notify: PortId | null, sync = 0): DnrequestResult {
    const none = { previous: null };
    const entry = this.#space.lookup(name);
    if (entry === undefined) return { kr: KERN_INVALID_NAME, ...none };
    if (entry.type === MACH_PORT_TYPE_PORT_SET) return { kr: KERN_INVALID_RIGHT, ...none };
    if (entry.type === MACH_PORT_TYPE_DEAD_NAME) {
      if (notify === null) return { kr: KERN_SUCCESS, previous: null };
      if (sync === 0) return { kr: KERN_INVALID_ARGUMENT, ...none };
      if (entry.urefs >= MACH_PORT_UREFS_MAX) return { kr: KERN_UREFS_OVERFLOW, ...none };
      entry.urefs++;
      this.#ops.notify(MACH_NOTIFY_DEAD_NAME, notify, name);
      return { kr: KERN_SUCCESS, previous: null };
    }
    const previous = entry.dnrequest;
    entry.dnrequest = notify;
    if (previous === null && notify !== null) this.#ops.dnrequestArm(entry.port!);
    if (previous !== null && notify === null) this.#ops.dnrequestCancel(entry.port!);
    return { kr: KERN_SUCCESS, previous };
  }

  /** PortRights.portDied: the space's rights to the dead `port` become dead names. */
  portDied(port: PortId): DeadNameRequest[] {
    const requests: DeadNameRequest[] = [];
    for (const name of this.#space.namesOfPort(port)) {
      const entry = this.#space.lookup(name)!;
      assert((entry.type & MACH_PORT_TYPE_RECEIVE) === 0, `port ${port} died under its receiver`);
      this.#space.setType(name, MACH_PORT_TYPE_DEAD_NAME);
      if (entry.dnrequest !== null) {
        requests.push({ name, notify: entry.dnrequest });
        entry.dnrequest = null;
        entry.urefs = Math.min(entry.urefs + 1, MACH_PORT_UREFS_MAX);
      }
    }
    return requests;
  }

  /** Holds back a port effect until `commit`. */
  push(call: () => void): void {
    this.#calls.push(call);
  }

  /** Runs the held-back effects, then the notifications; returns `result`. */
  commit<T>(result: T): T {
    for (const call of this.#calls) call();
    for (const call of this.#notices) call();
    return result;
  }

  /** Sets a send right's urefs (≥ 0); at 0 the send right is released. */
  setSendUrefs(name: PortName, entry: IpcEntry, urefs: number): void {
    if (urefs > 0) {
      entry.urefs = urefs;
      return;
    }
    const port = entry.port!;
    this.dropLastSend(name, entry);
    this.push(() => this.#ops.releaseSend(port));
  }

  /** The name's send right leaves it: a receive right sharing the name stays. */
  dropLastSend(name: PortName, entry: IpcEntry): void {
    if (entry.type & MACH_PORT_TYPE_RECEIVE) {
      this.#space.setType(name, MACH_PORT_TYPE_RECEIVE);
      entry.urefs = 0;
    } else {
      this.removeName(name, entry);
    }
  }

  setDeadUrefs(name: PortName, entry: IpcEntry, urefs: number): void {
    if (urefs > 0) entry.urefs = urefs;
    else this.#space.remove(name);
  }

  destroySendOnce(name: PortName, entry: IpcEntry): void {
    const port = entry.port!;
    this.removeName(name, entry);
    this.push(() => this.#ops.releaseSendOnce(port));
  }

  /**
   * The receive right under `name` is destroyed (mod_refs −1). A send right sharing the name
   * becomes a dead name (the port dies first, so no releaseSend, as in xnu's ipc_right_delta);
   * a request on it fires as a dead-name notification with one more uref.
   */
  destroyReceiveRight(name: PortName, entry: IpcEntry): void {
    const port = entry.port!;
    this.leaveSet(name, entry);
    if (entry.type & MACH_PORT_TYPE_SEND) {
      this.#space.setType(name, MACH_PORT_TYPE_DEAD_NAME);
      const notify = entry.dnrequest;
      this.push(() => this.#ops.destroyReceive(port));
      if (notify !== null) {
        entry.dnrequest = null;
        entry.urefs = Math.min(entry.urefs + 1, MACH_PORT_UREFS_MAX);
        this.push(() => this.#ops.dnrequestCancel(port));
        this.push(() => this.#ops.notify(MACH_NOTIFY_DEAD_NAME, notify, name));
      }
    } else {
      this.removeName(name, entry);
      this.push(() => this.#ops.destroyReceive(port));
    }
  }

  destroySet(name: PortName, entry: IpcEntry): void {
    for (const member of entry.members!) {
      const memberEntry = this.#space.lookup(member)!;
      this.leaveSet(member, memberEntry);
    }
    const set = entry.port!;
    this.#space.remove(name);
    this.push(() => this.#ops.destroyPortSet(set));
  }

  /** Takes a receive right out of its port set, if it is in one. */
  leaveSet(name: PortName, entry: IpcEntry): void {
    if (entry.inSet === PORT_NAME_NULL) return;
    this.#space.lookup(entry.inSet)!.members!.delete(name);
    entry.inSet = PORT_NAME_NULL;
    const port = entry.port!;
    this.push(() => this.#ops.setMembership(port, null));
  }

  /**
   * Frees a name that holds a port right; its dead-name request, if any, is cancelled and gets
   * MACH_NOTIFY_PORT_DELETED (after the caller's other effects).
   */
  removeName(name: PortName, entry: IpcEntry): void {
    const port = entry.port!;
    const notify = entry.dnrequest;
    this.leaveSet(name, entry);
    this.#space.remove(name);
    if (notify === null) return;
    this.#notices.push(() => {
      this.#ops.dnrequestCancel(port);
      this.#ops.notify(MACH_NOTIFY_PORT_DELETED, notify, name);
    });
  }
}

/**
 * Destroys a right in transit that will never be copied out (a destroyed or undeliverable
 * message): a receive right kills its port, a send right is released, a send-once right sends
 * its port a send-once notification, a dead right is nothing.
 * Conditions: consumes `right`.
 */
export function destroyRightInTransit(right: RightInTransit, ops: PortOps): void {
  switch (right.kind) {
    case 'receive': ops.destroyReceive(right.portId); break;
    case 'send': ops.releaseSend(right.portId); break;
    case 'send-once': ops.releaseSendOnce(right.portId); break;
    case 'dead': break;
  }
}
