/**
 * The `kernel.mach` facade: the man pages' names and argument order. Every call resolves to
 * `{ kr, ...out-values }` (or a bare kr where the page has no out-values) and never rejects for
 * a kernel error. It is a thin face over the same routines the Task methods use.
 */
import { chooseLedgers, type Ledger } from './actors/ledger.js';
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, type kern_return_t,
} from './shared/constants.js';
import type { ForkMode, NodeApi, TaskLedgers } from './shared/protocol.js';
import type { SecurityToken } from './shared/types.js';
import type { Kernel } from './kernel.js';
import { toBytes, type Task } from './task.js';
import { BARE_KR_CALLS, taskIpcMach, type TaskIpcMach } from './shared/ipc-facade.js';

export interface VmRegionOut {
  kr: kern_return_t;
  address: number;
  size: number;
  protection: number;
  max_protection: number;
  inheritance: number;
  shared: boolean;
  offset: number;
}

export interface TaskInfoOut {
  kr: kern_return_t;
  node: number;
  suspend_count: number;
  virtual_size: number;
  region_count: number;
  thread_count: number;
  security_token: SecurityToken;
}

/** The IPC calls, each with the task whose space the names are in as first argument. */
export type MachIpc = {
  [K in keyof TaskIpcMach]: (task: Task, ...args: Parameters<TaskIpcMach[K]>) => ReturnType<TaskIpcMach[K]>;
};

export interface Mach extends MachIpc {
  host_page_size(): Promise<{ kr: kern_return_t; page_size: number }>;
  task_create(parent_task: Task, ledgers: readonly (Ledger | null)[] | null, ledger_count: number,
    inherit_memory: boolean): Promise<{ kr: kern_return_t; child_task?: Task }>;
  norma_task_create(parent_task: Task, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: Task }>;
  norma_task_clone(parent_task: Task, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: Task }>;
  norma_task_teleport(parent_task: Task, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: Task }>;
  task_terminate(task: Task): Promise<kern_return_t>;
  task_suspend(task: Task): Promise<kern_return_t>;
  task_resume(task: Task): Promise<kern_return_t>;
  task_info(task: Task): Promise<TaskInfoOut | { kr: kern_return_t }>;
  host_security_set_task_token(task: Task, security_token: SecurityToken): Promise<kern_return_t>;
  vm_allocate(target_task: Task, address: number, size: number, anywhere: boolean): Promise<{ kr: kern_return_t; address: number }>;
  vm_deallocate(target_task: Task, address: number, size: number): Promise<kern_return_t>;
  vm_inherit(target_task: Task, address: number, size: number, new_inheritance: number): Promise<kern_return_t>;
  vm_protect(target_task: Task, address: number, size: number, set_maximum: boolean, new_protection: number): Promise<kern_return_t>;
  vm_region(target_task: Task, address: number): Promise<VmRegionOut | { kr: kern_return_t }>;
  vm_read(target_task: Task, address: number, size: number): Promise<{ kr: kern_return_t; data?: Uint8Array }>;
  vm_write(target_task: Task, address: number, data: ArrayBufferView | ArrayBuffer): Promise<kern_return_t>;
  vm_copy(target_task: Task, source_address: number, size: number, dest_address: number): Promise<kern_return_t>;
}

type Reply<K extends keyof NodeApi> = Awaited<ReturnType<NodeApi[K]>>;

export function createMach(kernel: Kernel): Mach {
  /** A routine on a task's node, or KERN_INVALID_ARGUMENT when `task` is no task of this kernel. */
  const onTask = async <K extends keyof NodeApi>(task: unknown, method: K,
    ...args: Parameters<NodeApi[K]> extends [unknown, ...infer Rest] ? Rest : never): Promise<Reply<K> | { kr: number }> => {
    if (!kernel.owns(task)) return { kr: KERN_INVALID_ARGUMENT };
    const request = task.request as unknown as (routine: K, ...rest: unknown[]) => Promise<Reply<K>>;
    return request.call(task, method, ...(args as unknown[]));
  };

  const fork = async (parent: unknown, mode: ForkMode, inheritMemory: unknown, childNode: unknown,
    ledgers: TaskLedgers | null) => {
    const { kr, child } = await kernel.fork(parent, mode, inheritMemory, childNode, ledgers);
    return child === undefined ? { kr } : { kr, child_task: child };
  };

  const ipc = {} as Record<keyof TaskIpcMach, (task: unknown, ...args: unknown[]) => Promise<unknown>>;
  for (const call of Object.keys(taskIpcMach(async () => ({ kr: 0 }))) as (keyof TaskIpcMach)[]) {
    ipc[call] = async (task, ...args) => {
      if (!kernel.owns(task)) return BARE_KR_CALLS.has(call) ? KERN_INVALID_ARGUMENT : { kr: KERN_INVALID_ARGUMENT };
      return (task.mach[call] as (...callArgs: unknown[]) => Promise<unknown>)(...args);
    };
  }

  return {
    ...(ipc as unknown as MachIpc),
    async host_page_size() { return { kr: KERN_SUCCESS, page_size: kernel.pageSize }; },

    async task_create(parent_task, ledgers, ledger_count, inherit_memory) {
      const chosen = chooseLedgers(ledgers, ledger_count);
      if (chosen === 'invalid') return { kr: KERN_INVALID_ARGUMENT };
      const parentNode = kernel.owns(parent_task) ? parent_task.node : -1;
      return fork(parent_task, 'create', inherit_memory, parentNode, chosen);
    },
    norma_task_create: (parent_task, inherit_memory, child_node) => fork(parent_task, 'create', inherit_memory, child_node, null),
    norma_task_clone: (parent_task, inherit_memory, child_node) => fork(parent_task, 'clone', inherit_memory, child_node, null),
    norma_task_teleport: (parent_task, inherit_memory, child_node) => fork(parent_task, 'teleport', inherit_memory, child_node, null),

    async task_terminate(task) { return (await onTask(task, 'taskTerminate')).kr; },
    async task_suspend(task) { return (await onTask(task, 'taskSuspend')).kr; },
    async task_resume(task) { return (await onTask(task, 'taskResume')).kr; },
    async task_info(task) {
      const reply = await onTask(task, 'taskInfo');
      if (!('info' in reply) || reply.info === undefined) return { kr: reply.kr };
      const info = reply.info;
      return {
        kr: reply.kr, node: info.node, suspend_count: info.suspendCount, virtual_size: info.virtualSize,
        region_count: info.regionCount, thread_count: info.threadCount, security_token: info.securityToken,
      };
    },
    async host_security_set_task_token(task, security_token) {
      return (await onTask(task, 'taskSetSecurityToken', security_token)).kr;
    },

    async vm_allocate(target_task, address, size, anywhere) {
      const reply = await onTask(target_task, 'vmAllocate', address, size, anywhere);
      return { kr: reply.kr, address: 'address' in reply ? reply.address : 0 };
    },
    async vm_deallocate(target_task, address, size) { return (await onTask(target_task, 'vmDeallocate', address, size)).kr; },
    async vm_inherit(target_task, address, size, new_inheritance) {
      return (await onTask(target_task, 'vmInherit', address, size, new_inheritance)).kr;
    },
    async vm_protect(target_task, address, size, set_maximum, new_protection) {
      return (await onTask(target_task, 'vmProtect', address, size, set_maximum, new_protection)).kr;
    },
    async vm_region(target_task, address) {
      const reply = await onTask(target_task, 'vmRegion', address);
      if (!('region' in reply) || reply.region === undefined) return { kr: reply.kr };
      const region = reply.region;
      return {
        kr: reply.kr, address: region.address, size: region.size, protection: region.protection,
        max_protection: region.maxProtection, inheritance: region.inheritance, shared: region.shared,
        offset: region.offset,
      };
    },
    async vm_read(target_task, address, size) {
      const reply = await onTask(target_task, 'vmRead', address, size);
      return 'data' in reply && reply.data !== undefined ? { kr: reply.kr, data: reply.data } : { kr: reply.kr };
    },
    async vm_write(target_task, address, data) { return (await onTask(target_task, 'vmWrite', address, toBytes(data))).kr; },
    async vm_copy(target_task, source_address, size, dest_address) {
      return (await onTask(target_task, 'vmCopy', source_address, size, dest_address)).kr;
    },
  };
}
