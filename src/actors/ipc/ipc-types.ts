/**
 * The `PortOps` interface through which a name space reaches its ports (Mach `ipc_object` /
 * `ipc_port` references, as seen from `ipc_right`), the `IpcHost` through which a node's IPC
 * reaches its kernel, plus the two reserved names and the name sanitizer. Names, port ids and rights in transit are shapes both sides use (shared/).
 */
import {
  MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_PORT_DELETED, MACH_PORT_DEAD, MACH_PORT_NULL,
} from '../../shared/constants.js';
import type { IpcTraffic } from '../../shared/protocol.js';
import type { OolRegion } from '../../shared/message.js';
import type { NodeId, TaskId, PortId, PortName, MemoryObjectRef } from '../../shared/types.js';

export const PORT_NAME_NULL = MACH_PORT_NULL as PortName;
export const PORT_NAME_DEAD = MACH_PORT_DEAD as PortName;

/**
 * Turns a user's raw number into a `PortName`, or `undefined` when it cannot be a name at all
 * (not an unsigned 32-bit integer). Any 32-bit value is name-shaped; whether it denotes a right
 * is the name space's business.
 */
export function sanitizePortName(value: unknown): PortName | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff
    ? value as PortName
    : undefined;
}

/** The notifications a name space itself sends to a registered send-once right. */
export type SpaceNotification = typeof MACH_NOTIFY_PORT_DELETED | typeof MACH_NOTIFY_DEAD_NAME;

/**
 * Everything a name space does to ports, injected because a port may live on another node: the
 * space never touches a port object. One instance serves one space (task), so the implementation
 * knows which task is acting. Every method is called after the space has committed its own
 * change, and none may call back into the same space synchronously.
 */
export interface PortOps {
  /** Make a new port whose receive right this space will hold; `undefined` if none can be made. */
  createPort(): PortId | undefined;
  /** Make a new, empty port set for this space; `undefined` if none can be made. */
  createPortSet(): PortId | undefined;
  /** The port set was destroyed; its members have already been moved out with `setMembership`. */
  destroyPortSet(set: PortId): void;
  /** The receive right for `port` joined `set`, or left its set when `set` is null. */
  setMembership(port: PortId, set: PortId | null): void;
  /** MAKE_SEND: the port's make-send count and send-right count each go up by one. */
  makeSend(port: PortId): void;
  /** One more send right exists (COPY_SEND, or MOVE_SEND splitting one uref off a name). */
  copySend(port: PortId): void;
  /**
   * One send right ceased to exist (its last uref went, its name was destroyed, or it merged
   * into a name that already held a send right). At zero the port fires no-senders.
   */
  releaseSend(port: PortId): void;
  /** MAKE_SEND_ONCE: one more send-once right exists. */
  makeSendOnce(port: PortId): void;
  /** A send-once right died unused: the port gets a MACH_NOTIFY_SEND_ONCE message. */
  releaseSendOnce(port: PortId): void;
  /**
   * MOVE_RECEIVE: the receive right left this space for a message (`ipc_port_clear_receiver`):
   * make-send count and sequence number go back to 0. Its queue and other rights survive.
   */
  clearReceiver(port: PortId): void;
  /** The receive right was destroyed: the port dies (see `portDied` for the send side). */
  destroyReceive(port: PortId): void;
  /** This space registered a dead-name request on a right to `port`: tell it when the port dies. */
  dnrequestArm(port: PortId): void;
  /**
   * This space's dead-name request on `port` is gone: cancelled, its name freed, or fired by the
   * space itself when it destroyed the port's receive right. Not called by `portDied`.
   */
  dnrequestCancel(port: PortId): void;
  /**
   * Send notification `id` about `name` to the send-once right `notify` (consuming it):
   * MACH_NOTIFY_PORT_DELETED when a name with a request stopped denoting its right,
   * MACH_NOTIFY_DEAD_NAME when a request was made on a name that was already dead.
   */
  notify(id: SpaceNotification, notify: PortId, name: PortName): void;
}

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
