/**
 * Task handles on the host: the idiomatic face of a task send right. Each method resolves with
 * the routine's out-value or rejects with a KernError; the `mach` facade (mach.ts) calls the
 * same `request` and returns the kern_return_t instead.
 */
import {
  EXC_MASK_ALL, EXCEPTION_DEFAULT, KERN_INVALID_ARGUMENT, KERN_SUCCESS, KERN_TERMINATED, MACH_PORT_RIGHT_RECEIVE, MACH_RCV_MSG,
  MACH_RCV_TIMEOUT, MACH_SEND_MSG, MACH_SEND_TIMEOUT, VM_INHERIT_COPY, VM_INHERIT_NONE,
  VM_INHERIT_SHARE,
} from './shared/constants.js';
import { taskIpcMach, type PortRight, type TaskIpcMach } from './shared/ipc-facade.js';
import { toBytes } from './shared/task-facade.js';
import { KernError } from './shared/errors.js';
import type { ExceptionPortsReply, NodeApi, RegionInfo, Reply, RestParameters, SerializedError, TaskBasicInfo } from './shared/protocol.js';
import type { NodeId, SecurityToken, TaskId } from './shared/types.js';
import type { TaskKernel } from './mach.js';
import { codeError, jsState, moduleSpecifier, type Thread } from './thread.js';
import { NORMA_THREAD_STATE_JS } from './shared/thread-types.js';
import type { TaskHandle } from './router.js';
import { chooseLedgers, type Ledger } from './actors/kern/ledger.js';
import type { MachMsgReceived, MachMsgSend } from './shared/message.js';

type TaskRoutine = { [K in keyof NodeApi]: Parameters<NodeApi[K]>[0] extends TaskId ? K : never }[keyof NodeApi];

export interface CreateOptions {
  /** Inherit the parent's address space (by each region's inheritance, or shared for clones). Default true. */
  readonly inheritMemory?: boolean;
}

export interface TaskCreateOptions extends CreateOptions {
  /** [wired, paged] ledgers for the child; the parent's when omitted. */
  readonly ledgers?: readonly [Ledger, Ledger];
}

export interface AllocateOptions {
  /** Where to allocate; without it the kernel chooses (anywhere). */
  readonly address?: number;
  /** Let the kernel choose even though `address` is given. Default: true unless `address` is given. */
  readonly anywhere?: boolean;
}

export class Task implements TaskHandle {
  readonly id: TaskId;
  readonly node: NodeId;
  /** The kernel this task belongs to (its routing side and its `mach` facade). */
  readonly kernel: TaskKernel<Task, Thread>;

  /** @internal */
  constructor(kernel: TaskKernel<Task, Thread>, id: TaskId, node: NodeId) {
    this.kernel = kernel;
    this.id = id;
    this.node = node;
  }

  /**
   * @internal One routine on this task's node, with the task as first argument. Node failure
   * becomes `{ kr: KERN_NODE_DOWN }`; released memory objects are handed to their pagers.
   */
  request<K extends TaskRoutine>(method: K, ...args: RestParameters<NodeApi[K]>): Promise<Reply<K>> {
    return this.kernel.request(this.node, method, ...([this.id, ...args] as unknown as Parameters<NodeApi[K]>));
  }

  /** vm_allocate: zero-filled memory; resolves to its address. */
  async allocate(size: number, options: AllocateOptions = {}): Promise<number> {
    const anywhere = options.anywhere ?? options.address === undefined;
    return check(await this.request('vmAllocate', options.address ?? 0, size, anywhere), 'vm_allocate').address;
  }

  /** vm_deallocate: unmaps [address, address + size) from this task only. */
  async deallocate(address: number, size: number): Promise<void> {
    check(await this.request('vmDeallocate', address, size), 'vm_deallocate');
  }

  /** vm_protect: sets the current protection, or the maximum with `setMaximum`. */
  async protect(address: number, size: number, protection: number, options: { setMaximum?: boolean } = {}): Promise<void> {
    check(await this.request('vmProtect', address, size, options.setMaximum ?? false, protection), 'vm_protect');
  }

  /** vm_inherit: how the range passes to children created later. */
  async inherit(address: number, size: number, inheritance: number): Promise<void> {
    check(await this.request('vmInherit', address, size, inheritance), 'vm_inherit');
  }

  /** vm_region: the region holding `address`, or the next one above it. */
  async region(address: number): Promise<RegionInfo> {
    return check(await this.request('vmRegion', address), 'vm_region').region!;
  }

  /** Every region of the map in address order (a vm_region walk in one call). */
  async regions(): Promise<RegionInfo[]> {
    return check(await this.request('vmRegions'), 'vm_region').regions!;
  }

  /** vm_read: a copy of `size` bytes at `address`. */
  async read(address: number, size: number): Promise<Uint8Array> {
    return check(await this.request('vmRead', address, size), 'vm_read').data!;
  }

  /** vm_write: writes `data` at `address`, as the task itself would. */
  async write(address: number, data: ArrayBufferView | ArrayBuffer): Promise<void> {
    check(await this.request('vmWrite', address, toBytes(data)), 'vm_write');
  }

  /** vm_copy: copies `size` bytes from `source` to `dest` within this task. */
  async copy(source: number, size: number, dest: number): Promise<void> {
    check(await this.request('vmCopy', source, size, dest), 'vm_copy');
  }

  /**
   * A Uint8Array over the task's memory itself (not a copy): writes through it are seen by every
   * task sharing the region, on every node, and Atomics work on it. The range must be readable
   * and lie in one memory object. Protection is checked when the view is made, not on each access.
   */
  async view(address: number, size: number): Promise<Uint8Array> {
    const reply = check(await this.request('vmView', address, size), 'view');
    return new Uint8Array(reply.sab!, reply.byteOffset, reply.length);
  }

  /** task_create: a child on this task's node. */
  async create(options: TaskCreateOptions = {}): Promise<Task> {
    const ledgers = options.ledgers === undefined ? null : chooseLedgers(options.ledgers, options.ledgers.length);
    if (ledgers === 'invalid') throw new KernError(KERN_INVALID_ARGUMENT, 'task_create: not a ledger');
    return checkChild(await this.kernel.fork(this, 'create', inherits(options), this.node, ledgers), 'task_create');
  }

  /** norma_task_create: a child on `node`, honoring each region's inheritance. */
  async createOn(node: number, options: CreateOptions = {}): Promise<Task> {
    return checkChild(await this.kernel.fork(this, 'create', inherits(options), node, null),
      'norma_task_create');
  }

  /** norma_task_clone: a child on `node` sharing all memory, whatever its inheritance. */
  async clone(node: number, options: CreateOptions = {}): Promise<Task> {
    return checkChild(await this.kernel.fork(this, 'clone', inherits(options), node, null),
      'norma_task_clone');
  }

  /** norma_task_teleport: clone onto `node`, then terminate this task. */
  async teleport(node: number, options: CreateOptions = {}): Promise<Task> {
    return checkChild(await this.kernel.fork(this, 'teleport', inherits(options), node, null),
      'norma_task_teleport');
  }

  /** task_terminate. */
  async terminate(): Promise<void> {
    check(await this.request('taskTerminate'), 'task_terminate');
  }

  /**
   * Settles when the task ends: resolves once it is terminated (task_terminate, teleport);
   * rejects with KernError KERN_FAILURE when an exception no handler took ended it, its `cause`
   * holding the error's name, message and stack with `exception`, `code` and `thread`.
   */
  async exited(): Promise<void> {
    const exit = await this.request('taskExited');
    if (exit.kr === KERN_TERMINATED) return;
    const error = exit.error === undefined ? undefined
      : { ...exit.error, exception: exit.exception, code: exit.code, thread: exit.thread } as SerializedError;
    throw codeError(exit.kr, `task ${this.id} ended by an exception no handler took`, error);
  }

  /** task_set_exception_ports: the send right `port` (named in this task) handles the types in `mask`. */
  async setExceptionPorts(mask: number, port: number, behavior: number = EXCEPTION_DEFAULT,
    flavor: number = NORMA_THREAD_STATE_JS): Promise<void> {
    checkKr(await this.kernel.mach.task_set_exception_ports(this, mask, port, behavior, flavor), 'task_set_exception_ports');
  }

  /** task_get_exception_ports: the handlers of the types in `mask`, as the man page's out-values. */
  async exceptionPorts(mask: number = EXC_MASK_ALL): Promise<ExceptionPortsReply> {
    return check(await this.kernel.mach.task_get_exception_ports(this, mask), 'task_get_exception_ports');
  }

  /** task_swap_exception_ports: set, answering the handlers from before. */
  async swapExceptionPorts(mask: number, port: number, behavior: number = EXCEPTION_DEFAULT,
    flavor: number = NORMA_THREAD_STATE_JS): Promise<ExceptionPortsReply> {
    return check(await this.kernel.mach.task_swap_exception_ports(this, mask, port, behavior, flavor), 'task_swap_exception_ports');
  }

  /** task_suspend. */
  async suspend(): Promise<void> {
    check(await this.request('taskSuspend'), 'task_suspend');
  }

  /** task_resume. */
  async resume(): Promise<void> {
    check(await this.request('taskResume'), 'task_resume');
  }

  /** task_info (TASK_BASIC_INFO). */
  async info(): Promise<TaskBasicInfo> {
    return check(await this.request('taskInfo'), 'task_info').info!;
  }

  /** host_security_set_task_token: the token children inherit. */
  async setSecurityToken(token: SecurityToken): Promise<void> {
    check(await this.request('taskSetSecurityToken', token), 'host_security_set_task_token');
  }

  /**
   * Runs `exportName` from the ES module at `moduleUrl` on this task's node, as code of this
   * task: it is called with a TaskContext (whose `view` reaches the task's memory) and `args`,
   * and may be async. Waits while the task is suspended. Resolves to its (cloneable) result.
   * `moduleUrl` is a URL, an absolute path, or a path relative to the caller's working
   * directory ('./x.mjs'); other specifiers resolve as an import from this package would.
   * Rejects with KernError: KERN_INVALID_ARGUMENT for a module, export or argument that cannot
   * be used (the message names which), KERN_FAILURE when the code throws or returns a value
   * that cannot be cloned (`cause` holds the error), KERN_TERMINATED, KERN_NODE_DOWN.
   */
  async execute(moduleUrl: string | { readonly href: string }, exportName: string, ...args: unknown[]): Promise<unknown> {
    const specifier = moduleSpecifier(moduleUrl);
    if (specifier === undefined || typeof exportName !== 'string') {
      throw new KernError(KERN_INVALID_ARGUMENT, 'execute: the module must be a string or URL and the export name a string');
    }
    const reply = await this.request('taskExecute', specifier, exportName, args);
    if (reply.error !== undefined) {
      const cause = Object.assign(new Error(reply.error.message), reply.error);
      throw new KernError(reply.kr, `execute ${exportName}: ${reply.error.message}`, { cause });
    }
    // The node explains each refusal of its own, so a bare one is the host's: an argument that
    // cannot be cloned to a thread (Kernel.request answers DataCloneError so).
    if (reply.kr === KERN_INVALID_ARGUMENT) {
      throw new KernError(KERN_INVALID_ARGUMENT, `execute ${exportName}: an argument cannot be cloned to a node`);
    }
    return check(reply, 'execute').value;
  }

  /**
   * thread_create_running: a thread of this task running `entry` of `module` (as execute takes
   * them) with a ThreadContext and `args`. The thread is running when this resolves; join() it
   * for its result. Rejects with KernError: KERN_INVALID_ARGUMENT naming the module, export or
   * argument that cannot be used; KERN_FAILURE when the module throws while loading;
   * KERN_RESOURCE_SHORTAGE; KERN_NODE_DOWN. Nothing is created then.
   */
  async spawn(module: string | { readonly href: string }, entry: string, ...args: unknown[]): Promise<Thread> {
    if (moduleSpecifier(module) === undefined || typeof entry !== 'string') {
      throw new KernError(KERN_INVALID_ARGUMENT, 'spawn: the module must be a string or URL and the entry a string');
    }
    const reply = await this.request('threadCreate', NORMA_THREAD_STATE_JS, jsState(module, entry, args));
    if (reply.kr === KERN_INVALID_ARGUMENT && reply.error === undefined) {
      throw new KernError(KERN_INVALID_ARGUMENT, `spawn ${entry}: an argument cannot be cloned to a node`);
    }
    if (reply.kr !== KERN_SUCCESS) throw codeError(reply.kr, `spawn ${entry}`, reply.error);
    const thread = this.kernel.thread(this, reply.thread!.thread);
    // Joined from the start, so a termination settles it even if no one asks until later.
    thread.join().catch(() => {});
    return thread;
  }

  /** task_threads: this task's threads that have not ended. */
  async threads(): Promise<Thread[]> {
    const reply = check(await this.request('taskThreads'), 'task_threads');
    return (reply.threads ?? []).map((ref) => this.kernel.thread(this, ref.thread));
  }

  #mach: TaskIpcMach | undefined;

  /** The IPC calls as this task makes them, with the man pages' names (names in its space). */
  get mach(): TaskIpcMach {
    const request = this.request as unknown as (method: string, ...args: unknown[]) => Promise<{ kr: number }>;
    this.#mach ??= taskIpcMach(((method: string, ...args: unknown[]) => request.call(this, method, ...args)) as never);
    return this.#mach;
  }

  /** mach_task_self: the name of this task's own kernel port in its space. */
  async self(): Promise<number> { return check(await this.mach.mach_task_self(), 'mach_task_self').name; }

  /** mach_port_allocate: a new receive right (default), port set or dead name; resolves to its name. */
  async allocatePort(right: number = MACH_PORT_RIGHT_RECEIVE): Promise<number> {
    return check(await this.mach.mach_port_allocate(right), 'mach_port_allocate').name;
  }

  /** mach_port_deallocate. */
  async deallocatePort(name: number): Promise<void> { checkKr(await this.mach.mach_port_deallocate(name), 'mach_port_deallocate'); }

  /** mach_port_destroy. */
  async destroyPort(name: number): Promise<void> { checkKr(await this.mach.mach_port_destroy(name), 'mach_port_destroy'); }

  /** mach_port_mod_refs. */
  async modRefs(name: number, right: number, delta: number): Promise<void> {
    checkKr(await this.mach.mach_port_mod_refs(name, right, delta), 'mach_port_mod_refs');
  }

  /** mach_port_get_refs. */
  async getRefs(name: number, right: number): Promise<number> {
    return check(await this.mach.mach_port_get_refs(name, right), 'mach_port_get_refs').refs;
  }

  /** mach_port_type: the MACH_PORT_TYPE_* bits of `name`. */
  async portType(name: number): Promise<number> { return check(await this.mach.mach_port_type(name), 'mach_port_type').ptype; }

  /** mach_port_names: every name with its type bits. */
  async portNames(): Promise<{ names: readonly number[]; types: readonly number[] }> {
    const { names, types } = check(await this.mach.mach_port_names(), 'mach_port_names');
    return { names, types };
  }

  /** mach_port_move_member (MACH_PORT_NULL as `after` takes `member` out of its set). */
  async moveMember(member: number, after: number): Promise<void> {
    checkKr(await this.mach.mach_port_move_member(member, after), 'mach_port_move_member');
  }

  /** mach_port_insert_right: a right from this task's `poly` by disposition, or an extracted PortRight. */
  async insertRight(name: number, poly: number | PortRight, polyPoly: number): Promise<void> {
    checkKr(await this.mach.mach_port_insert_right(name, poly, polyPoly), 'mach_port_insert_right');
  }

  /** mach_port_extract_right: the right leaves this task, for insertRight into any task. */
  async extractRight(name: number, msgtName: number): Promise<PortRight> {
    return check(await this.mach.mach_port_extract_right(name, msgtName), 'mach_port_extract_right').poly!;
  }

  /** mach_port_request_notification; resolves to the previous request's send-once name. */
  async requestNotification(name: number, variant: number, sync: number, notify: number, notifyPoly: number): Promise<number> {
    return check(await this.mach.mach_port_request_notification(name, variant, sync, notify, notifyPoly),
      'mach_port_request_notification').previous;
  }

  /** mach_port_get_attributes. */
  async portAttributes(name: number, flavor: number): Promise<unknown> {
    return check(await this.mach.mach_port_get_attributes(name, flavor), 'mach_port_get_attributes').port_info;
  }

  /** mach_port_set_attributes. */
  async setPortAttributes(name: number, flavor: number, info: unknown): Promise<void> {
    checkKr(await this.mach.mach_port_set_attributes(name, flavor, info), 'mach_port_set_attributes');
  }

  /** mach_msg send: waits for a queue place (up to `timeout` ms when given). */
  async send(msg: MachMsgSend, options: { timeout?: number } = {}): Promise<void> {
    const option = MACH_SEND_MSG | (options.timeout === undefined ? 0 : MACH_SEND_TIMEOUT);
    check(await this.mach.mach_msg(msg, option, 0, 0, 0, options.timeout ?? 0), 'mach_msg');
  }

  /** mach_msg receive on a receive right or port set (up to `timeout` ms when given). */
  async receive(name: number, options: { timeout?: number } = {}): Promise<MachMsgReceived> {
    const option = MACH_RCV_MSG | (options.timeout === undefined ? 0 : MACH_RCV_TIMEOUT);
    return check(await this.mach.mach_msg(null, option, 0, 0, name, options.timeout ?? 0), 'mach_msg').msg!;
  }

  /** task_get_special_port: a send right to the special port, named in this task. */
  async specialPort(which: number): Promise<number> {
    return check(await this.mach.task_get_special_port(which), 'task_get_special_port').special_port;
  }

  /** task_set_special_port. */
  async setSpecialPort(which: number, name: number): Promise<void> {
    checkKr(await this.mach.task_set_special_port(which, name), 'task_set_special_port');
  }

  /** mach_ports_register. */
  async registerPorts(names: readonly number[]): Promise<void> {
    checkKr(await this.mach.mach_ports_register(names), 'mach_ports_register');
  }

  /** mach_ports_lookup: the registered ports, named in this task. */
  async registeredPorts(): Promise<readonly number[]> {
    return check(await this.mach.mach_ports_lookup(), 'mach_ports_lookup').init_port_set;
  }

  toString(): string { return `task ${this.id} on node ${this.node}`; }
}

function checkKr(kr: number, routine: string): void {
  if (kr !== KERN_SUCCESS) throw new KernError(kr, routine);
}

/** Inheritance of a region as a word, for maps printed side by side. */
export function inheritanceName(inheritance: number): string {
  switch (inheritance) {
    case VM_INHERIT_SHARE: return 'share';
    case VM_INHERIT_COPY: return 'copy';
    case VM_INHERIT_NONE: return 'none';
    default: return String(inheritance);
  }
}

/** inherit_memory defaults to true; anything but a boolean is for fork to reject. */
function inherits(options: CreateOptions): unknown {
  return options.inheritMemory === undefined ? true : options.inheritMemory;
}

function check<T extends { kr: number }>(reply: T, routine: string): T {
  if (reply.kr !== KERN_SUCCESS) throw new KernError(reply.kr, routine);
  return reply;
}

function checkChild(reply: { kr: number; child?: Task }, routine: string): Task {
  return check(reply, routine).child!;
}

