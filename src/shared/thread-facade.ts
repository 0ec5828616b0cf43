/**
 * The thread calls with the man pages' names and argument order, over any way of reaching tasks
 * and threads: the host's Task and Thread handles (kernel.mach), or send rights to their kernel
 * ports named in the calling task's space (a thread's context.mach on a node). One definition
 * serves both; `act` turns a new or listed thread into the face's thread_act_t.
 */
import { KERN_SUCCESS } from './constants.js';
import type { ExceptionPortsReply, NodeApi, Reply, RestParameters, ThreadRef } from './protocol.js';
import type { CallOnTask } from './task-facade.js';
import type { ThreadStateJs } from './thread-types.js';

/** Runs a thread routine on the thread `target` denotes, or answers why it cannot. */
export type CallOnThread<Act> = <K extends keyof NodeApi>(target: Act, method: K,
  ...args: RestParameters<NodeApi[K]>) => Promise<Reply<K> | { kr: number }>;

/** thread_basic_info as thread_info answers it (times and policy are not kept). */
export interface ThreadBasicInfoOut {
  readonly run_state: number;
  readonly suspend_count: number;
}

export interface ThreadMach<Task, Act> {
  /** A thread in `parent_task` with suspend count 1 and no state, as Mach's. */
  thread_create(parent_task: Task): Promise<{ kr: number; child_act?: Act }>;
  /** A thread in `parent_task` running `new_state` at once. */
  thread_create_running(parent_task: Task, flavor: number, new_state: ThreadStateJs, new_state_count?: number):
    Promise<{ kr: number; child_act?: Act }>;
  thread_set_state(target_act: Act, flavor: number, new_state: ThreadStateJs, new_state_count?: number): Promise<number>;
  thread_get_state(target_act: Act, flavor: number): Promise<{ kr: number; old_state?: ThreadStateJs }>;
  thread_resume(target_act: Act): Promise<number>;
  thread_suspend(target_act: Act): Promise<number>;
  thread_terminate(target_act: Act): Promise<number>;
  thread_abort(target_act: Act): Promise<number>;
  thread_info(target_act: Act, flavor: number): Promise<{ kr: number; thread_info?: ThreadBasicInfoOut }>;
  task_threads(target_task: Task): Promise<{ kr: number; act_list: readonly Act[]; act_count: number }>;
  /** Exception ports: `new_port` and the ports answered are names in the target task's space. */
  task_set_exception_ports(task: Task, exception_mask: number, new_port: number, behavior: number, new_flavor: number): Promise<number>;
  task_get_exception_ports(task: Task, exception_mask: number): Promise<ExceptionPortsReply>;
  task_swap_exception_ports(task: Task, exception_mask: number, new_port: number, behavior: number, new_flavor: number):
    Promise<ExceptionPortsReply>;
  thread_set_exception_ports(thread: Act, exception_mask: number, new_port: number, behavior: number, new_flavor: number): Promise<number>;
  thread_get_exception_ports(thread: Act, exception_mask: number): Promise<ExceptionPortsReply>;
  thread_swap_exception_ports(thread: Act, exception_mask: number, new_port: number, behavior: number, new_flavor: number):
    Promise<ExceptionPortsReply>;
}

/** A get or swap reply as the man pages name it (a refusal from before the routine ran has empty arrays). */
function portsOut(reply: Partial<ExceptionPortsReply> & { kr: number }): ExceptionPortsReply {
  return {
    kr: reply.kr, old_exception_masks: reply.old_exception_masks ?? [], old_exception_ports: reply.old_exception_ports ?? [],
    old_behaviors: reply.old_behaviors ?? [], old_flavors: reply.old_flavors ?? [], old_exception_count: reply.old_exception_count ?? 0,
  };
}

export interface ThreadCalls<Task, Act> {
  readonly onTask: CallOnTask<Task>;
  readonly onThread: CallOnThread<Act>;
  /** The face's handle for a thread of `task` (a Thread, or a send right's name in the caller's space). */
  act(task: Task, ref: ThreadRef): Act;
  /** The state as the node should see it (the host resolves a relative module path). */
  state(state: ThreadStateJs): ThreadStateJs;
}

export function threadMach<Task, Act>(calls: ThreadCalls<Task, Act>): ThreadMach<Task, Act> {
  const { onTask, onThread, act } = calls;
  const created = async (task: Task, flavor: number | null, state: ThreadStateJs | null) => {
    const reply = await onTask(task, 'threadCreate', flavor, state === null ? null : calls.state(state));
    const ref = 'thread' in reply ? reply.thread : undefined;
    return ref === undefined || reply.kr !== KERN_SUCCESS ? { kr: reply.kr } : { kr: reply.kr, child_act: act(task, ref) };
  };
  return {
    thread_create: (parent_task) => created(parent_task, null, null),
    thread_create_running: (parent_task, flavor, new_state) => created(parent_task, flavor, new_state),
    async thread_set_state(target_act, flavor, new_state) {
      return (await onThread(target_act, 'threadSetState', flavor, calls.state(new_state))).kr;
    },
    async thread_get_state(target_act, flavor) {
      const reply = await onThread(target_act, 'threadGetState', flavor);
      return 'state' in reply && reply.state !== undefined ? { kr: reply.kr, old_state: reply.state } : { kr: reply.kr };
    },
    async thread_resume(target_act) { return (await onThread(target_act, 'threadResume')).kr; },
    async thread_suspend(target_act) { return (await onThread(target_act, 'threadSuspend')).kr; },
    async thread_terminate(target_act) { return (await onThread(target_act, 'threadTerminate')).kr; },
    async thread_abort(target_act) { return (await onThread(target_act, 'threadAbort')).kr; },
    async thread_info(target_act, flavor) {
      const reply = await onThread(target_act, 'threadInfo', flavor);
      if (!('info' in reply) || reply.info === undefined) return { kr: reply.kr };
      return { kr: reply.kr, thread_info: { run_state: reply.info.runState, suspend_count: reply.info.suspendCount } };
    },
    async task_threads(target_task) {
      const reply = await onTask(target_task, 'taskThreads');
      const refs = 'threads' in reply && reply.threads !== undefined ? reply.threads : [];
      const act_list = refs.map((ref) => act(target_task, ref));
      return { kr: reply.kr, act_list, act_count: act_list.length };
    },
    async task_set_exception_ports(task, mask, port, behavior, flavor) {
      return (await onTask(task, 'taskSetExceptionPorts', mask, port, behavior, flavor)).kr;
    },
    async task_get_exception_ports(task, mask) { return portsOut(await onTask(task, 'taskGetExceptionPorts', mask)); },
    async task_swap_exception_ports(task, mask, port, behavior, flavor) {
      return portsOut(await onTask(task, 'taskSwapExceptionPorts', mask, port, behavior, flavor));
    },
    async thread_set_exception_ports(thread, mask, port, behavior, flavor) {
      return (await onThread(thread, 'threadSetExceptionPorts', mask, port, behavior, flavor)).kr;
    },
    async thread_get_exception_ports(thread, mask) { return portsOut(await onThread(thread, 'threadGetExceptionPorts', mask)); },
    async thread_swap_exception_ports(thread, mask, port, behavior, flavor) {
      return portsOut(await onThread(thread, 'threadSwapExceptionPorts', mask, port, behavior, flavor));
    },
  };
}
