/**
 * Task handles on the host: the idiomatic face of a task send right. Each method resolves with
 * the routine's out-value or rejects with a KernError; the `mach` facade (mach.ts) calls the
 * same `request` and returns the kern_return_t instead.
 */
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE,
} from './shared/constants.js';
import { KernError } from './shared/errors.js';
import type { NodeApi, RegionInfo, TaskBasicInfo } from './shared/protocol.js';
import type { NodeId, SecurityToken, TaskId } from './shared/types.js';
import type { Kernel } from './kernel.js';
import { chooseLedgers, type Ledger } from './actors/ledger.js';

type Reply<K extends keyof NodeApi> = Awaited<ReturnType<NodeApi[K]>>;
type TaskRoutine = { [K in keyof NodeApi]: Parameters<NodeApi[K]>[0] extends TaskId ? K : never }[keyof NodeApi];
type RestParameters<F> = F extends (first: never, ...rest: infer R) => unknown ? R : never;

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

export class Task {
  readonly id: TaskId;
  readonly node: NodeId;
  /** The kernel this task belongs to. */
  readonly kernel: Kernel;

  /** @internal */
  constructor(kernel: Kernel, id: TaskId, node: NodeId) {
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
   */
  async execute(moduleUrl: string | URL, exportName: string, ...args: unknown[]): Promise<unknown> {
    const reply = await this.request('taskExecute', String(moduleUrl), exportName, args);
    if (reply.kr === KERN_FAILURE && reply.error !== undefined) {
      const cause = Object.assign(new Error(reply.error.message), reply.error);
      throw new KernError(KERN_FAILURE, `execute ${exportName}: ${reply.error.message}`, { cause });
    }
    return check(reply, 'execute').value;
  }

  toString(): string { return `task ${this.id} on node ${this.node}`; }
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

/** Byte views of what users hand to vm_write; anything else goes through for the kernel to reject. */
export function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return new Uint8Array(data);
  return data as Uint8Array;
}
