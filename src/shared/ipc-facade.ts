/**
 * The IPC calls with the man pages' names, argument order and out-value names, bound to one task
 * (names are in its space). One definition serves both places a task's code runs: the host's
 * `kernel.mach` (which adds the task as first argument) and a node's TaskContext.
 */
import { KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_SUCCESS } from './constants.js';
import type { NodeApi, Reply, RestParameters } from './protocol.js';
import type { MachMsgReceived, MachMsgSend, RightInTransit } from './message.js';


/** Runs one NodeApi routine for the bound task; resolves to `{ kr: KERN_NODE_DOWN }` and the like on failure. */
export type TaskCall = <K extends keyof NodeApi>(method: K, ...args: RestParameters<NodeApi[K]>) =>
  Promise<Reply<K> | { kr: number }>;

/** The right behind each PortRight, out of reach of the code holding the token. */
const heldRights = new WeakMap<PortRight, RightInTransit>();

/**
 * A right the caller holds outside any space, from mach_port_extract_right: it goes into a
 * space again with mach_port_insert_right, once. The token is a capability: the right inside
 * cannot be read, copied or made up, only handed to insert_right.
 */
export class PortRight {
  /** The type the right is received as (MACH_MSG_TYPE_PORT_*). */
  readonly type: number;

  /** @internal */
  constructor(right: RightInTransit, type: number) {
    this.type = type;
    heldRights.set(this, right);
  }

  /** True once the right went into a space. */
  get consumed(): boolean { return !heldRights.has(this); }
}

export interface TaskIpcMach {
  mach_task_self(): Promise<{ kr: number; name: number }>;
  /**
   * mach_msg: sends `msg` (MACH_SEND_MSG), then receives on `rcv_name` (MACH_RCV_MSG).
   *
   * `send_size` is ignored: the message object carries its own size. `rcv_size` is the size of
   * the receive buffer in bytes, against which a message's size is measured: 24 bytes of header
   * (mach_msg_header_t), then, when the message carries port rights or out-of-line regions,
   * 4 bytes of descriptor count and 12 bytes per descriptor, then its inline body bytes (the
   * layout of the received message on a 32-bit Mach task; out-of-line memory counts by its
   * descriptor, not its length). A message of 5 body bytes and one port right has size
   * 24 + 4 + 12 + 5 = 45. A larger message answers MACH_RCV_TOO_LARGE with its `size`: under
   * MACH_RCV_LARGE it stays queued, to be received with a larger `rcv_size`; without it, it is
   * dequeued and destroyed, as in Mach. An `rcv_size` of 0 (or none) sets no limit, since the
   * received message is allocated for the caller; one that is not a non-negative integer
   * answers KERN_INVALID_ARGUMENT and sends nothing.
   */
  mach_msg(msg: MachMsgSend | null, option: number, send_size?: number, rcv_size?: number, rcv_name?: number,
    timeout?: number, notify?: number): Promise<{ kr: number; msg?: MachMsgReceived; size?: number }>;
  mach_port_allocate(right: number): Promise<{ kr: number; name: number }>;
  mach_port_deallocate(name: number): Promise<number>;
  mach_port_destroy(name: number): Promise<number>;
  mach_port_mod_refs(name: number, right: number, delta: number): Promise<number>;
  mach_port_get_refs(name: number, right: number): Promise<{ kr: number; refs: number }>;
  mach_port_type(name: number): Promise<{ kr: number; ptype: number }>;
  mach_port_names(): Promise<{ kr: number; names: readonly number[]; types: readonly number[] }>;
  mach_port_move_member(member: number, after: number): Promise<number>;
  mach_port_insert_right(name: number, poly: number | PortRight, poly_poly: number): Promise<number>;
  mach_port_extract_right(name: number, msgt_name: number): Promise<{ kr: number; poly?: PortRight; poly_poly?: number }>;
  mach_port_request_notification(name: number, variant: number, sync: number, notify: number,
    notify_poly: number): Promise<{ kr: number; previous: number }>;
  mach_port_get_attributes(name: number, flavor: number): Promise<{ kr: number; port_info?: unknown }>;
  mach_port_set_attributes(name: number, flavor: number, port_info: unknown): Promise<number>;
  task_get_special_port(which_port: number): Promise<{ kr: number; special_port: number }>;
  task_set_special_port(which_port: number, special_port: number): Promise<number>;
  mach_ports_register(init_port_set: readonly number[], init_port_count?: number): Promise<number>;
  mach_ports_lookup(): Promise<{ kr: number; init_port_set: readonly number[]; init_port_count: number }>;
}

const field = <T>(reply: object, key: string, fallback: T): T =>
  key in reply ? (reply as Record<string, T>)[key]! : fallback;

/** The IPC calls of one task, over `call`. */
export function taskIpcMach(call: TaskCall): TaskIpcMach {
  return {
    async mach_task_self() {
      const reply = await call('taskSelf');
      return { kr: reply.kr, name: field(reply, 'name', 0) };
    },
    // Not async: the call's own promise is the answer, with no extra turn on the hot path.
    mach_msg(msg, option, _sendSize, rcvSize = 0, rcvName = 0, timeout = 0) {
      if (!Number.isSafeInteger(rcvSize) || rcvSize < 0) return Promise.resolve({ kr: KERN_INVALID_ARGUMENT });
      return call('machMsg', msg, option, rcvName, timeout, rcvSize);
    },
    async mach_port_allocate(right) {
      const reply = await call('portAllocate', right);
      return { kr: reply.kr, name: field(reply, 'name', 0) };
    },
    async mach_port_deallocate(name) { return (await call('portDeallocate', name)).kr; },
    async mach_port_destroy(name) { return (await call('portDestroy', name)).kr; },
    async mach_port_mod_refs(name, right, delta) { return (await call('portModRefs', name, right, delta)).kr; },
    async mach_port_get_refs(name, right) {
      const reply = await call('portGetRefs', name, right);
      return { kr: reply.kr, refs: field(reply, 'refs', 0) };
    },
    async mach_port_type(name) {
      const reply = await call('portType', name);
      return { kr: reply.kr, ptype: field(reply, 'type', 0) };
    },
    async mach_port_names() {
      const reply = await call('portNames');
      return { kr: reply.kr, names: field(reply, 'names', []), types: field(reply, 'types', []) };
    },
    async mach_port_move_member(member, after) { return (await call('portMoveMember', member, after)).kr; },
    async mach_port_insert_right(name, poly, polyPoly) {
      if (typeof poly === 'number') return (await call('portInsertRight', name, poly, polyPoly)).kr;
      // Only a token this realm made carries a right: anything else is a forgery.
      if (!(poly instanceof PortRight)) return KERN_INVALID_ARGUMENT;
      const right = heldRights.get(poly);
      if (right === undefined) return KERN_INVALID_CAPABILITY; // inserted already, or on its way
      // Spent while the call is out, so it cannot go in twice; a refused insert (the kernel
      // checks everything before it takes the right) hands it back, usable again.
      heldRights.delete(poly);
      const { kr } = await call('portInsertRight', name, right, polyPoly);
      if (kr !== KERN_SUCCESS) heldRights.set(poly, right);
      return kr;
    },
    async mach_port_extract_right(name, msgtName) {
      const reply = await call('portExtractRight', name, msgtName);
      const right = field<RightInTransit | undefined>(reply, 'right', undefined);
      const type = field(reply, 'type', 0);
      return right === undefined ? { kr: reply.kr } : { kr: reply.kr, poly: new PortRight(right, type), poly_poly: type };
    },
    async mach_port_request_notification(name, variant, sync, notify, notifyPoly) {
      const reply = await call('portRequestNotification', name, variant, sync, notify, notifyPoly);
      return { kr: reply.kr, previous: field(reply, 'previous', 0) };
    },
    async mach_port_get_attributes(name, flavor) {
      const reply = await call('portGetAttributes', name, flavor);
      const info = field<unknown>(reply, 'info', undefined);
      return info === undefined ? { kr: reply.kr } : { kr: reply.kr, port_info: info };
    },
    async mach_port_set_attributes(name, flavor, info) { return (await call('portSetAttributes', name, flavor, info)).kr; },
    async task_get_special_port(which) {
      const reply = await call('taskGetSpecialPort', which);
      return { kr: reply.kr, special_port: field(reply, 'name', 0) };
    },
    async task_set_special_port(which, port) { return (await call('taskSetSpecialPort', which, port)).kr; },
    async mach_ports_register(ports) { return (await call('portsRegister', ports)).kr; },
    async mach_ports_lookup() {
      const reply = await call('portsLookup');
      const names = field<readonly number[]>(reply, 'names', []);
      return { kr: reply.kr, init_port_set: names, init_port_count: names.length };
    },
  };
}

/** The calls of TaskIpcMach that resolve to a bare kern_return_t. */
export const BARE_KR_CALLS: ReadonlySet<keyof TaskIpcMach> = new Set<keyof TaskIpcMach>([
  'mach_port_deallocate', 'mach_port_destroy', 'mach_port_mod_refs', 'mach_port_move_member',
  'mach_port_insert_right', 'mach_port_set_attributes', 'task_set_special_port', 'mach_ports_register',
]);
