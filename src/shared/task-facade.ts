/**
 * The task and VM calls with the man pages' names and argument order, over any way of reaching a
 * task: the host's Task handles (kernel.mach) or a send right to a task's kernel port, named in
 * the calling task's space (TaskContext.mach on a node). One definition serves both.
 */
import type { ForkMode, NodeApi, Reply, RestParameters, TaskBasicInfo } from './protocol.js';
import type { SecurityToken } from './types.js';


/** Runs a task routine on the task `target` denotes, or answers why it cannot. */
export type CallOnTask<Target> = <K extends keyof NodeApi>(target: Target, method: K,
  ...args: RestParameters<NodeApi[K]>) => Promise<Reply<K> | { kr: number }>;

export interface VmRegionOut {
  kr: number;
  address: number;
  size: number;
  protection: number;
  max_protection: number;
  inheritance: number;
  shared: boolean;
  offset: number;
}

export interface TaskInfoOut {
  kr: number;
  node: number;
  suspend_count: number;
  virtual_size: number;
  region_count: number;
  thread_count: number;
  security_token: SecurityToken;
}

export interface TaskMach<Target> {
  task_terminate(task: Target): Promise<number>;
  task_suspend(task: Target): Promise<number>;
  task_resume(task: Target): Promise<number>;
  task_info(task: Target): Promise<TaskInfoOut | { kr: number }>;
  host_security_set_task_token(task: Target, security_token: SecurityToken): Promise<number>;
  vm_allocate(target_task: Target, address: number, size: number, anywhere: boolean): Promise<{ kr: number; address: number }>;
  vm_deallocate(target_task: Target, address: number, size: number): Promise<number>;
  vm_inherit(target_task: Target, address: number, size: number, new_inheritance: number): Promise<number>;
  vm_protect(target_task: Target, address: number, size: number, set_maximum: boolean, new_protection: number): Promise<number>;
  vm_region(target_task: Target, address: number): Promise<VmRegionOut | { kr: number }>;
  vm_read(target_task: Target, address: number, size: number): Promise<{ kr: number; data?: Uint8Array }>;
  vm_write(target_task: Target, address: number, data: ArrayBufferView | ArrayBuffer): Promise<number>;
  vm_copy(target_task: Target, source_address: number, size: number, dest_address: number): Promise<number>;
}

export function taskMach<Target>(callOn: CallOnTask<Target>): TaskMach<Target> {
  return {
    async task_terminate(task) { return (await callOn(task, 'taskTerminate')).kr; },
    async task_suspend(task) { return (await callOn(task, 'taskSuspend')).kr; },
    async task_resume(task) { return (await callOn(task, 'taskResume')).kr; },
    async task_info(task) {
      const reply = await callOn(task, 'taskInfo');
      if (!('info' in reply) || reply.info === undefined) return { kr: reply.kr };
      const info: TaskBasicInfo = reply.info;
      return {
        kr: reply.kr, node: info.node, suspend_count: info.suspendCount, virtual_size: info.virtualSize,
        region_count: info.regionCount, thread_count: info.threadCount, security_token: info.securityToken,
      };
    },
    async host_security_set_task_token(task, security_token) {
      return (await callOn(task, 'taskSetSecurityToken', security_token)).kr;
    },

    async vm_allocate(target_task, address, size, anywhere) {
      const reply = await callOn(target_task, 'vmAllocate', address, size, anywhere);
      return { kr: reply.kr, address: 'address' in reply ? reply.address : 0 };
    },
    async vm_deallocate(target_task, address, size) { return (await callOn(target_task, 'vmDeallocate', address, size)).kr; },
    async vm_inherit(target_task, address, size, new_inheritance) {
      return (await callOn(target_task, 'vmInherit', address, size, new_inheritance)).kr;
    },
    async vm_protect(target_task, address, size, set_maximum, new_protection) {
      return (await callOn(target_task, 'vmProtect', address, size, set_maximum, new_protection)).kr;
    },
    async vm_region(target_task, address) {
      const reply = await callOn(target_task, 'vmRegion', address);
      if (!('region' in reply) || reply.region === undefined) return { kr: reply.kr };
      const region = reply.region;
      return {
        kr: reply.kr, address: region.address, size: region.size, protection: region.protection,
        max_protection: region.maxProtection, inheritance: region.inheritance, shared: region.shared,
        offset: region.offset,
      };
    },
    async vm_read(target_task, address, size) {
      const reply = await callOn(target_task, 'vmRead', address, size);
      return 'data' in reply && reply.data !== undefined ? { kr: reply.kr, data: reply.data } : { kr: reply.kr };
    },
    async vm_write(target_task, address, data) { return (await callOn(target_task, 'vmWrite', address, toBytes(data))).kr; },
    async vm_copy(target_task, source_address, size, dest_address) {
      return (await callOn(target_task, 'vmCopy', source_address, size, dest_address)).kr;
    },
  };
}

/**
 * A fork of the task a name denotes (actors/kern/fork-calls.ts): the child on `childNode`, or on
 * the parent's node when undefined; the child answered as a name in the caller's space.
 */
export type ForkOnTask = (name: number, mode: ForkMode, inheritMemory: unknown, childNode: unknown) =>
  Promise<{ kr: number; child_task?: number }>;

/** The four task-creation calls task code makes, names for tasks as the other task calls. */
export interface TaskCreateMach {
  /** The child on the parent's node. `ledgers` and `ledger_count` are ignored: the child gets the parent's ledgers. */
  task_create(parent_task: number, ledgers: unknown, ledger_count: number, inherit_memory: boolean): Promise<{ kr: number; child_task?: number }>;
  norma_task_create(parent_task: number, inherit_memory: boolean, child_node: number): Promise<{ kr: number; child_task?: number }>;
  norma_task_clone(parent_task: number, inherit_memory: boolean, child_node: number): Promise<{ kr: number; child_task?: number }>;
  norma_task_teleport(parent_task: number, inherit_memory: boolean, child_node: number): Promise<{ kr: number; child_task?: number }>;
}

export function taskCreateMach(fork: ForkOnTask): TaskCreateMach {
  return {
    task_create: (parent_task, _ledgers, _ledger_count, inherit_memory) => fork(parent_task, 'create', inherit_memory, undefined),
    norma_task_create: (parent_task, inherit_memory, child_node) => fork(parent_task, 'create', inherit_memory, child_node),
    norma_task_clone: (parent_task, inherit_memory, child_node) => fork(parent_task, 'clone', inherit_memory, child_node),
    norma_task_teleport: (parent_task, inherit_memory, child_node) => fork(parent_task, 'teleport', inherit_memory, child_node),
  };
}

/** Byte views of what callers hand to vm_write; anything else goes through for the kernel to reject. */
export function toBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return new Uint8Array(data);
  return data as Uint8Array;
}
