/**
 * The `kernel.mach` facade: the man pages' names and argument order. Every call resolves to
 * `{ kr, ...out-values }` (or a bare kr where the page has no out-values) and never rejects for
 * a kernel error. It is a thin face over the same routines the Task methods use.
 */
import { chooseLedgers, type Ledger } from './actors/kern/ledger.js';
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, type kern_return_t,
} from './shared/constants.js';
import type { ForkMode, TaskLedgers } from './shared/protocol.js';
import type { TaskHandle, TaskRouter, ThreadHandle } from './router.js';
import { threadMach, type CallOnThread, type ThreadBasicInfoOut, type ThreadMach } from './shared/thread-facade.js';
import { jsState } from './thread.js';
import {
  taskMach, type CallOnTask, type TaskInfoOut, type TaskMach, type VmRegionOut,
} from './shared/task-facade.js';
import { BARE_KR_CALLS, taskIpcMach, type TaskIpcMach } from './shared/ipc-facade.js';

/** The IPC calls, each with the task whose space the names are in as first argument. */
export type MachIpc<T extends TaskHandle = TaskHandle> = {
  [K in keyof TaskIpcMach]: (task: T, ...args: Parameters<TaskIpcMach[K]>) => ReturnType<TaskIpcMach[K]>;
};

export type { TaskInfoOut, ThreadBasicInfoOut, VmRegionOut };

/** `kernel.mach`: the calls on tasks of handle type `T` (the kernel's `Task`) and threads of type `A` (`Thread`). */
export interface Mach<T extends TaskHandle = TaskHandle, A extends ThreadHandle = ThreadHandle>
  extends MachIpc<T>, TaskMach<T>, ThreadMach<T, A> {
  host_page_size(): Promise<{ kr: kern_return_t; page_size: number }>;
  task_create(parent_task: T, ledgers: readonly (Ledger | null)[] | null, ledger_count: number,
    inherit_memory: boolean): Promise<{ kr: kern_return_t; child_task?: T }>;
  norma_task_create(parent_task: T, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: T }>;
  norma_task_clone(parent_task: T, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: T }>;
  norma_task_teleport(parent_task: T, inherit_memory: boolean, child_node: number): Promise<{ kr: kern_return_t; child_task?: T }>;
}

/** What a task handle sees of its kernel: the router, and the facade over the same routines. */
export interface TaskKernel<T extends TaskHandle, A extends ThreadHandle = ThreadHandle> extends TaskRouter<T, A> {
  readonly mach: Mach<T, A>;
}

export function createMach<T extends TaskHandle, A extends ThreadHandle>(kernel: TaskRouter<T, A>): Mach<T, A> {
  /** A routine on a task's node, or KERN_INVALID_ARGUMENT when `task` is no task of this kernel. */
  const onTask: CallOnTask<T> = async (task, method, ...args) => {
    if (!kernel.owns(task)) return { kr: KERN_INVALID_ARGUMENT };
    const request = kernel.request as (node: number, routine: typeof method, ...rest: unknown[]) => Promise<{ kr: number }>;
    return request.call(kernel, task.node, method, task.id, ...(args as unknown[])) as never;
  };
  /** A routine on a thread's node, or KERN_INVALID_ARGUMENT when `act` is no thread of this kernel. */
  const onThread: CallOnThread<A> = async (act, method, ...args) => {
    if (!kernel.ownsThread(act)) return { kr: KERN_INVALID_ARGUMENT };
    const request = kernel.request as (node: number, routine: typeof method, ...rest: unknown[]) => Promise<{ kr: number }>;
    return request.call(kernel, act.node, method, act.id, ...(args as unknown[])) as never;
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
    ...(ipc as unknown as MachIpc<T>),
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

    ...taskMach(onTask),
    ...threadMach<T, A>({
      onTask, onThread, act: (task, ref) => kernel.thread(task, ref.thread),
      state: (state) => typeof state === 'object' && state !== null ? jsState(state.module, state.entry, state.args) : state,
    }),
  };
}
