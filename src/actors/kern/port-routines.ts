/**
 * NodeApi's port and mach_msg routines, each run on the calling task's IPC space. NodeKernel
 * extends this class, so its routine table stays one object while the IPC routines live here.
 */
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_PORT_TYPE_RECEIVE, MACH_RCV_MSG, MACH_RCV_TIMEOUT,
  MACH_SEND_INVALID_HEADER, MACH_SEND_MSG, MACH_SEND_TIMEOUT,
} from '../../shared/constants.js';
import type { MachMsgSend, RightInTransit } from '../../shared/message.js';
import type { MachMsgReply } from '../../shared/protocol.js';
import type { PortId, TaskId } from '../../shared/types.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import type { TaskIpc } from '../ipc/space.js';
import type { TaskActor } from './task.js';

export abstract class PortRoutines {
  /** This node's IPC: routing, and the port table its send-right counts live in. */
  protected abstract readonly nodeIpc: NodeIpc;
  /** The IPC space of live task `id` on this node. */
  protected abstract spaceOf(id: TaskId): TaskIpc | undefined;

  portAllocate(id: TaskId, right: number) { return this.spaceOf(id)?.allocate(right) ?? { kr: KERN_INVALID_ARGUMENT, name: 0 }; }
  portDeallocate(id: TaskId, name: number) { return this.spaceOf(id)?.deallocate(name) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portDestroy(id: TaskId, name: number) { return this.spaceOf(id)?.destroy(name) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portModRefs(id: TaskId, name: number, right: number, delta: number) {
    return this.spaceOf(id)?.modRefs(name, right, delta) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portGetRefs(id: TaskId, name: number, right: number) {
    return this.spaceOf(id)?.getRefs(name, right) ?? { kr: KERN_INVALID_ARGUMENT, refs: 0 };
  }
  portType(id: TaskId, name: number) { return this.spaceOf(id)?.type(name) ?? { kr: KERN_INVALID_ARGUMENT, type: 0 }; }
  portNames(id: TaskId) { return this.spaceOf(id)?.names() ?? { kr: KERN_INVALID_ARGUMENT, names: [], types: [] }; }
  portMoveMember(id: TaskId, member: number, after: number) {
    return this.spaceOf(id)?.moveMember(member, after) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  /**
   * A send or send-once right inserted from outside this node (a PortRight token) is this
   * node's to answer for from now on. Counted before the insert, which may merge a send right
   * into a name holding one and release it here.
   */
  portInsertRight(id: TaskId, name: number, poly: number | RightInTransit, polyPoly: number) {
    const ipc = this.spaceOf(id);
    if (ipc === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const token = typeof poly === 'object' && poly !== null ? poly : undefined;
    if (token?.kind === 'send') this.nodeIpc.table.sendRightsHeld(token.portId, 1);
    const reply = ipc.insertRight(name, poly, polyPoly);
    if (token?.kind === 'send' && reply.kr !== KERN_SUCCESS) this.nodeIpc.table.sendRightsHeld(token.portId, -1);
    if (reply.kr === KERN_SUCCESS && token?.kind === 'send-once') this.nodeIpc.table.sendOnceMade(token.portId);
    return reply;
  }
  /**
   * A send or send-once right extracted leaves this node's count: its holder outside answers
   * for it. A receive right's table receiver stays this node (nothing records the token's holder),
   * so this node's death kills its port.
   */
  portExtractRight(id: TaskId, name: number, msgtName: number) {
    const reply: { kr: number; right?: RightInTransit; type?: number } =
      this.spaceOf(id)?.extractRight(name, msgtName) ?? { kr: KERN_INVALID_ARGUMENT };
    if (reply.right?.kind === 'send-once') this.nodeIpc.table.sendOnceUsed(reply.right.portId);
    if (reply.right?.kind === 'send') this.nodeIpc.table.sendRightsHeld(reply.right.portId, -1);
    return reply;
  }
  /** Waits for a migrating receive right's queue first: the request is kept with the queue. */
  async portRequestNotification(id: TaskId, name: number, variant: number, sync: number, notify: number, notifyPoly: number) {
    await this.spaceOf(id)?.settleReceiveRight(name);
    return this.spaceOf(id)?.requestNotification(name, variant, sync, notify, notifyPoly) ?? { kr: KERN_INVALID_ARGUMENT, previous: 0 };
  }
  /** Waits for a migrating receive right's queue first, so the status is the queue's. */
  async portGetAttributes(id: TaskId, name: number, flavor: number) {
    await this.spaceOf(id)?.settleReceiveRight(name);
    return this.spaceOf(id)?.getAttributes(name, flavor) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portSetAttributes(id: TaskId, name: number, flavor: number, info: unknown) {
    return this.spaceOf(id)?.setAttributes(name, flavor, info) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  /**
   * mach_msg as task `id`: the send (MACH_SEND_MSG) and then the receive (MACH_RCV_MSG); the
   * receive is skipped when the send fails. `timeout` (ms) applies to the halves whose
   * MACH_SEND_TIMEOUT / MACH_RCV_TIMEOUT option is set; the others wait as long as it takes.
   * Returns what TaskIpc.send and TaskIpc.receive return; MACH_SEND_INVALID_HEADER for a
   * malformed timeout; KERN_INVALID_ARGUMENT for an unknown task. `abort` is the calling thread's
   * (in-node calls only: the call gate, syscall.ts, passes it): its waits end interrupted.
   */
  /**
   * mach_msg: the send half, then the receive half. Answers synchronously when neither half has
   * to wait (a queue place free, a message queued, or a timeout of 0), else a promise.
   */
  machMsg(id: TaskId, msg: MachMsgSend | null, option: number, rcvName: number, timeout: number, rcvSize = 0,
    abort?: unknown): MachMsgReply | Promise<MachMsgReply> {
    const ipc = this.spaceOf(id);
    const signal = abort instanceof AbortSignal ? abort : undefined;
    if (ipc === undefined || !Number.isInteger(option)) return { kr: KERN_INVALID_ARGUMENT };
    if (typeof timeout !== 'number' || !(timeout >= 0)) return { kr: MACH_SEND_INVALID_HEADER };
    const receive = (): MachMsgReply | Promise<MachMsgReply> => (option & MACH_RCV_MSG)
      ? ipc.receive(rcvName, option & MACH_RCV_TIMEOUT ? timeout : Infinity, option, rcvSize, signal)
      : { kr: MACH_MSG_SUCCESS };
    if ((option & MACH_SEND_MSG) === 0) return receive();
    const sent = ipc.send(msg as MachMsgSend, option & MACH_SEND_TIMEOUT ? timeout : Infinity, signal);
    if (typeof sent === 'number') return sent === MACH_MSG_SUCCESS ? receive() : { kr: sent };
    return sent.then((kr) => kr === MACH_MSG_SUCCESS ? receive() : { kr });
  }

  taskSelf(id: TaskId) {
    const ipc = this.spaceOf(id);
    return ipc === undefined ? { kr: KERN_INVALID_ARGUMENT, name: 0 } : { kr: KERN_SUCCESS, name: ipc.selfName as number };
  }
  taskGetSpecialPort(id: TaskId, which: number) { return this.spaceOf(id)?.getSpecialPort(which) ?? { kr: KERN_INVALID_ARGUMENT, name: 0 }; }
  taskSetSpecialPort(id: TaskId, which: number, name: number) {
    return this.spaceOf(id)?.setSpecialPort(which, name) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  portsRegister(id: TaskId, names: readonly number[]) { return this.spaceOf(id)?.register(names) ?? { kr: KERN_INVALID_ARGUMENT }; }
  portsLookup(id: TaskId) { return this.spaceOf(id)?.lookupRegistered() ?? { kr: KERN_INVALID_ARGUMENT, names: [] }; }

  /** Fires `task`'s dead-name requests on ports now dead (ports it holds a receive right to stay). */
  protected deadNameSweep(task: TaskActor): void {
    const { space } = task.ipc;
    const dead = new Set<PortId>();
    for (const name of space.names()) {
      const entry = space.lookup(name);
      if (entry?.dnrequest == null || entry.port === null || this.nodeIpc.table.isAlive(entry.port)) continue;
      const own = space.lookupPort(entry.port);
      if (own === undefined || (space.lookup(own)!.type & MACH_PORT_TYPE_RECEIVE) === 0) dead.add(entry.port);
    }
    for (const port of dead) task.ipc.portDied(port);
  }
}
