/**
 * NodeApi's thread routines (thread_create and the thread_* calls, task_threads), each run on
 * the thread's node, which is its task's. NodeKernel extends this class, so its routine table
 * stays one object. Each routine validates everything first (a bad flavor, state, module or
 * export, an argument that cannot be cloned), then acts: a refused call changes nothing. The
 * task_ and thread_*_exception_ports routines are here too, and the run loop that turns a
 * thread's uncaught error into an exception (exception.ts) and resumes it as its handler says.
 */
import {
  EXC_SOFT_JS_THROW, EXC_SOFT_JS_UNCLONEABLE, EXC_SOFTWARE, KERN_FAILURE, KERN_INVALID_ARGUMENT,
  KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, KERN_TERMINATED,
} from '../../shared/constants.js';
import type {
  CodeKrReply, ExceptionPortsReply, KrReply, SerializedError, TaskExit, ThreadReply,
} from '../../shared/protocol.js';
import {
  makeThreadId, NORMA_THREAD_STATE_JS, THREAD_BASIC_INFO, type ThreadId, type ThreadStateJs,
} from '../../shared/thread-types.js';
import type { TaskId } from '../../shared/types.js';
import { ExceptionPorts } from '../ipc/exception-ports.js';
import { PortKind } from '../ipc/port-table.js';
import { exceptionTriage, type RaisedException } from './exception.js';
import type { TaskActor } from './task.js';
import { loadExport, runTaskCode, uncloneableReply, type TaskEntry } from './task-code.js';
import { threadContext, type ThreadCallsOfTask } from './syscall.js';
import { ThreadActor, type ThreadOutcome } from './thread.js';
import { VmRoutines } from './vm-routines.js';

export abstract class ThreadRoutines extends VmRoutines {
  abstract readonly pageSize: number;
  /** What a thread of `task` calls the kernel through (its task's routines, other nodes). */
  protected abstract threadCalls(task: TaskActor): ThreadCallsOfTask;
  /** No handler took a thread's exception: the task is terminated, and whoever waits on it told why. */
  protected abstract exceptionExit(task: TaskActor, exit: TaskExit): void;
  /** Every thread here, ended ones too (for join) until their task ends. */
  readonly #threads = new Map<ThreadId, ThreadActor>();
  readonly #byTask = new Map<TaskId, Set<ThreadActor>>();
  /** Outcomes of threads whose unhandled exception ended their task: joins after that still learn why. */
  readonly #fatal = new Map<ThreadId, ThreadOutcome>();
  #nextThread = 1;

  /**
   * thread_create (no flavor or state: suspended, no code, as Mach) and thread_create_running
   * (runs `state` at once, unless its task is suspended). Returns KERN_SUCCESS with the thread
   * and its kernel port; KERN_INVALID_ARGUMENT naming the cause for an unknown task, a bad
   * flavor or state, a missing module or export, a non-function export or an argument that
   * cannot be cloned; KERN_FAILURE when the module throws while loading;
   * KERN_RESOURCE_SHORTAGE when the port table is full. A refusal creates nothing.
   */
  async threadCreate(taskId: TaskId, flavor: number | null, state: ThreadStateJs | null): Promise<ThreadReply> {
    const running = flavor !== null || state !== null;
    if (this.taskOf(taskId) === undefined) return refuse(`no task ${taskId} on node ${this.id}`);
    const checked = running ? await checkState(flavor, state) : undefined;
    if (checked !== undefined && !('entry' in checked)) return checked;
    const task = this.taskOf(taskId);
    if (task === undefined) return refuse(`task ${taskId} ended before its thread could be made`);
    const id = makeThreadId(this.id, this.#nextThread++);
    const port = this.nodeIpc.createPort(PortKind.THREAD, id);
    if (port === undefined) return { kr: KERN_RESOURCE_SHORTAGE, error: { name: 'Error', message: 'port table full' } };
    const thread = new ThreadActor(id, task, port, new ExceptionPorts(this.nodeIpc, task.ipc));
    this.#threads.set(id, thread);
    let siblings = this.#byTask.get(task.id);
    if (siblings === undefined) this.#byTask.set(task.id, siblings = new Set());
    siblings.add(thread);
    if (checked !== undefined) {
      thread.setState(checked.state, checked.entry);
      thread.resume();
      this.#startIfReady(thread);
    }
    return { kr: KERN_SUCCESS, thread: { thread: id, port } };
  }

  /**
   * thread_set_state: what the thread runs once resumed. Returns KERN_SUCCESS; KERN_FAILURE while
   * it runs a state (it may be set once the thread raised an exception and waits for its
   * handler: a KERN_SUCCESS reply then runs it); KERN_TERMINATED once it ended; otherwise the
   * refusals of threadCreate.
   */
  async threadSetState(id: ThreadId, flavor: number, state: ThreadStateJs): Promise<CodeKrReply> {
    const early = this.#settable(id);
    if (early !== undefined) return early;
    const checked = await checkState(flavor, state);
    if (!('entry' in checked)) return checked;
    const late = this.#settable(id);
    if (late !== undefined) return late;
    const thread = this.#threads.get(id)!;
    thread.setState(checked.state, checked.entry);
    this.#startIfReady(thread);
    return { kr: KERN_SUCCESS };
  }

  #settable(id: ThreadId): CodeKrReply | undefined {
    const thread = this.#threads.get(id);
    if (thread === undefined) return refuse(`no thread ${id} on node ${this.id}`);
    if (thread.ended) return { kr: KERN_TERMINATED };
    if (thread.started && !thread.inException) return { kr: KERN_FAILURE, error: { name: 'Error', message: `thread ${id} already runs its state` } };
    return undefined;
  }

  /** thread_get_state. Returns KERN_SUCCESS (no state before one is set); KERN_INVALID_ARGUMENT for a bad flavor or thread. */
  threadGetState(id: ThreadId, flavor: number): { kr: number; state?: ThreadStateJs } {
    const thread = this.#threads.get(id);
    if (thread === undefined || flavor !== NORMA_THREAD_STATE_JS) return { kr: KERN_INVALID_ARGUMENT };
    return thread.state === undefined ? { kr: KERN_SUCCESS } : { kr: KERN_SUCCESS, state: thread.state };
  }

  threadResume(id: ThreadId): KrReply {
    const thread = this.#threads.get(id);
    if (thread === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const kr = thread.resume();
    this.#startIfReady(thread);
    return { kr };
  }

  threadSuspend(id: ThreadId): KrReply { return { kr: this.#threads.get(id)?.suspend() ?? KERN_INVALID_ARGUMENT }; }
  threadAbort(id: ThreadId): KrReply { return { kr: this.#threads.get(id)?.abort() ?? KERN_INVALID_ARGUMENT }; }

  /** thread_terminate: its join answers KERN_TERMINATED, its waits end, its kernel calls never return. */
  threadTerminate(id: ThreadId): KrReply {
    const thread = this.#threads.get(id);
    if (thread === undefined) return { kr: KERN_INVALID_ARGUMENT };
    return { kr: this.#finish(thread, { kr: KERN_TERMINATED }) ? KERN_SUCCESS : KERN_TERMINATED };
  }

  threadInfo(id: ThreadId, flavor: number): { kr: number; info?: ReturnType<ThreadActor['info']> } {
    const thread = this.#threads.get(id);
    if (thread === undefined || flavor !== THREAD_BASIC_INFO) return { kr: KERN_INVALID_ARGUMENT };
    return { kr: KERN_SUCCESS, info: thread.info() };
  }

  threadJoin(id: ThreadId): Promise<ThreadOutcome> {
    const thread = this.#threads.get(id);
    const fatal = this.#fatal.get(id);
    if (thread === undefined && fatal !== undefined) return Promise.resolve(fatal);
    if (thread === undefined) return Promise.resolve(refuse(`no thread ${id} on node ${this.id} (gone with its task, or never made)`));
    return thread.join();
  }

  /** task_threads: the task's threads that have not ended. */
  taskThreads(taskId: TaskId) {
    if (this.taskOf(taskId) === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const threads = [...this.#byTask.get(taskId) ?? []].filter((thread) => !thread.ended);
    return { kr: KERN_SUCCESS, threads: threads.map((thread) => ({ thread: thread.id, port: thread.port })) };
  }

  /** How many threads of `task` have not ended (task_info's thread_count). */
  protected liveThreads(task: TaskId): number {
    let count = 0;
    for (const thread of this.#byTask.get(task) ?? []) if (!thread.ended) count++;
    return count;
  }

  /** task_terminate's thread half: every thread ends (KERN_TERMINATED) and is forgotten. */
  protected endThreads(task: TaskId): void {
    for (const thread of this.#byTask.get(task) ?? []) {
      this.#finish(thread, { kr: KERN_TERMINATED });
      this.#threads.delete(thread.id);
    }
    this.#byTask.delete(task);
  }

  /** The thread is over: its kernel port dies with it. False when it was over already. */
  #finish(thread: ThreadActor, outcome: ThreadOutcome): boolean {
    if (!thread.end(outcome)) return false;
    this.nodeIpc.destroyPort(thread.port);
    return true;
  }

  /** Runs the thread's state once it has one and it and its task may run. */
  #startIfReady(thread: ThreadActor): void {
    if (!thread.ready) return;
    let entry = thread.start();
    const context = threadContext(thread, this.pageSize, this.threadCalls(thread.task));
    void (async () => {
      for (;;) {
        await thread.checkpoint();
        const outcome = await runTaskCode(thread.task.id, entry, [context, ...structuredClone(thread.state!.args)], thread.id);
        const raised = exceptionOf(outcome);
        if (raised === undefined) {
          this.#finish(thread, outcome);
          return;
        }
        thread.inException = true;
        thread.renewed = false;
        const triage = await exceptionTriage(this.nodeIpc, thread, raised);
        // A state reply's new state counts as a thread_set_state made by the handler.
        if (triage.handled && triage.state !== undefined) await this.threadSetState(thread.id, triage.state.flavor, triage.state.state);
        thread.inException = false;
        if (!triage.handled) {
          if (triage.ended) return;
          const fatal = { kr: KERN_FAILURE, error: raised.error };
          this.#finish(thread, fatal);
          this.#fatal.set(thread.id, fatal);
          this.exceptionExit(thread.task, { kr: KERN_FAILURE, error: raised.error, exception: raised.exception,
            code: raised.code, thread: thread.id });
          return;
        }
        if (!thread.renewed || thread.ended) {
          this.#finish(thread, { kr: KERN_SUCCESS });
          return;
        }
        entry = thread.entry!;
      }
    })();
  }

  /** task_set_exception_ports (ExceptionPorts.set): `name` in the task's space. */
  taskSetExceptionPorts(task: TaskId, mask: number, name: number, behavior: number, flavor: number): KrReply {
    return this.taskOf(task)?.ipc.exceptions.set(mask, name, behavior, flavor) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  taskGetExceptionPorts(task: TaskId, mask: number): ExceptionPortsReply {
    return this.taskOf(task)?.ipc.exceptions.get(mask) ?? noPorts();
  }
  taskSwapExceptionPorts(task: TaskId, mask: number, name: number, behavior: number, flavor: number): ExceptionPortsReply {
    return this.taskOf(task)?.ipc.exceptions.swap(mask, name, behavior, flavor) ?? noPorts();
  }
  /** thread_set_exception_ports: `name` in the thread's task's space; KERN_TERMINATED once it ended. */
  threadSetExceptionPorts(id: ThreadId, mask: number, name: number, behavior: number, flavor: number): KrReply {
    const thread = this.#threads.get(id);
    if (thread?.ended === true) return { kr: KERN_TERMINATED };
    return thread?.exceptions.set(mask, name, behavior, flavor) ?? { kr: KERN_INVALID_ARGUMENT };
  }
  threadGetExceptionPorts(id: ThreadId, mask: number): ExceptionPortsReply {
    const thread = this.#threads.get(id);
    return thread === undefined || thread.ended ? noPorts(thread === undefined ? KERN_INVALID_ARGUMENT : KERN_TERMINATED)
      : thread.exceptions.get(mask);
  }
  threadSwapExceptionPorts(id: ThreadId, mask: number, name: number, behavior: number, flavor: number): ExceptionPortsReply {
    const thread = this.#threads.get(id);
    return thread === undefined || thread.ended ? noPorts(thread === undefined ? KERN_INVALID_ARGUMENT : KERN_TERMINATED)
      : thread.exceptions.swap(mask, name, behavior, flavor);
  }
}

function noPorts(kr: number = KERN_INVALID_ARGUMENT): ExceptionPortsReply {
  return { kr, old_exception_masks: [], old_exception_ports: [], old_behaviors: [], old_flavors: [], old_exception_count: 0 };
}

/**
 * The exception a thread's end raises: its code threw or rejected (EXC_SOFT_JS_THROW), or its
 * result cannot be cloned to whoever joins it (EXC_SOFT_JS_UNCLONEABLE); undefined otherwise.
 */
function exceptionOf(outcome: ThreadOutcome): RaisedException | undefined {
  if (outcome.kr === KERN_FAILURE && outcome.error !== undefined) {
    return { exception: EXC_SOFTWARE, code: [EXC_SOFT_JS_THROW, 0], error: outcome.error };
  }
  if (outcome.kr !== KERN_SUCCESS) return undefined;
  try {
    structuredClone(outcome.value);
    return undefined;
  } catch (error) {
    const found = uncloneableReply('threadJoin', { value: outcome.value }, error).error;
    return { exception: EXC_SOFTWARE, code: [EXC_SOFT_JS_UNCLONEABLE, 0], error: found };
  }
}

function refuse(message: string): { kr: number; error: SerializedError } {
  return { kr: KERN_INVALID_ARGUMENT, error: { name: 'Error', message } };
}

/**
 * A NORMA_THREAD_STATE_JS state checked, its arguments cloned (as they would be crossing to
 * a node) and its entry loaded; or the refusal naming what is wrong.
 */
async function checkState(flavor: unknown, state: unknown):
  Promise<{ state: ThreadStateJs; entry: TaskEntry } | { kr: number; error: SerializedError }> {
  if (flavor !== NORMA_THREAD_STATE_JS) return refuse(`flavor ${String(flavor)} is not NORMA_THREAD_STATE_JS (${NORMA_THREAD_STATE_JS})`);
  const { module, entry, args } = (typeof state === 'object' && state !== null ? state : {}) as Record<string, unknown>;
  if (typeof module !== 'string' || typeof entry !== 'string' || !Array.isArray(args)) {
    return refuse('a NORMA_THREAD_STATE_JS state is { module: string, entry: string, args: array }');
  }
  const cloned: unknown[] = [];
  for (const [index, arg] of args.entries()) {
    try {
      cloned.push(structuredClone(arg));
    } catch (error) {
      return refuse(`argument ${index} of '${entry}' cannot be cloned: ${(error as Error).message}`);
    }
  }
  const loaded = await loadExport(module, entry);
  if (!('entry' in loaded)) return loaded;
  return { state: { module, entry, args: cloned }, entry: loaded.entry };
}
