/**
 * Threads (Mach `thread`): JavaScript running in a task, on the task's node. A node is one CPU:
 * its threads interleave on its event loop, and a thread gives the node up only at its kernel
 * calls, yield() and wait() (the call gate, syscall.ts). So thread_suspend, task_suspend,
 * thread_abort and thread_terminate take effect there: a suspended thread stops at its next
 * call, an aborted one's kernel wait ends interrupted, a terminated one never returns from the
 * kernel (its pending call stays pending, and its stack is collected with it), as a Mach
 * thread terminated in the kernel never returns to user mode.
 *
 * An uncaught throw or rejection raises an exception (exception.ts): the thread waits for its
 * handlers' replies, and meanwhile takes a new state (thread_set_state) to run when resumed.
 */
import {
  KERN_FAILURE, KERN_SUCCESS, KERN_TERMINATED,
} from '../../shared/constants.js';
import type { PortId } from '../../shared/types.js';
import type { SerializedError } from '../../shared/protocol.js';
import {
  TH_STATE_HALTED, TH_STATE_RUNNING, TH_STATE_STOPPED, TH_STATE_WAITING, type ThreadBasicInfo, type ThreadId,
  type ThreadStateJs,
} from '../../shared/thread-types.js';
import type { ExceptionPorts } from '../ipc/exception-ports.js';
import type { TaskActor } from './task.js';
import type { TaskEntry } from './task-code.js';
import { globalNode } from './node-base.js';

/** How a thread ended, as its join answers. */
export type ThreadOutcome = { kr: number; value?: unknown; error?: SerializedError };

/** A pending promise that never settles: what a terminated thread's kernel call returns. */
const NEVER: Promise<never> = new Promise(() => {});

export class ThreadActor {
  readonly id: ThreadId;
  readonly task: TaskActor;
  /** Its kernel port (PortKind.THREAD); dies when the thread ends. */
  readonly port: PortId;
  /** Its per-type exception ports (none at first: new threads inherit none). */
  readonly exceptions: ExceptionPorts;
  /** Between raising an exception and its handler's verdict (thread_set_state is allowed then). */
  inException = false;
  /** A state set during the exception, to run if a handler answers KERN_SUCCESS. */
  renewed = false;
  #suspendCount: number;
  #state: ThreadStateJs | undefined;
  #entry: TaskEntry | undefined;
  #started = false;
  /** Kernel waits in progress (mach_msg, wait, yield): thread_info's TH_STATE_WAITING. */
  #waiting = 0;
  #outcome: ThreadOutcome | undefined;
  #joiners: Array<(outcome: ThreadOutcome) => void> = [];
  #resumeWaiters: Array<() => void> = [];
  /** Aborted by thread_abort (then replaced: an abort ends the waits in progress only) and terminate. */
  #abort = new AbortController();

  /** thread_create's thread: suspend count 1, no state (Mach's). */
  constructor(id: ThreadId, task: TaskActor, port: PortId, exceptions: ExceptionPorts) {
    this.id = id;
    this.task = task;
    this.port = port;
    this.exceptions = exceptions;
    this.#suspendCount = 1;
  }

  get ended(): boolean { return this.#outcome !== undefined; }
  get started(): boolean { return this.#started; }
  get state(): ThreadStateJs | undefined { return this.#state; }
  get entry(): TaskEntry | undefined { return this.#entry; }
  get suspendCount(): number { return this.#suspendCount; }
  /** The signal every kernel wait of the thread's current calls listens to. */
  get signal(): AbortSignal { return this.#abort.signal; }

  /** True while neither it nor its task is suspended or over: a kernel call passes the gate at once. */
  get runnable(): boolean {
    return this.#outcome === undefined && this.#suspendCount === 0 && this.task.suspendCount === 0 && this.task.state !== 'terminated';
  }

  /** True when a state is set, the counts are 0 and it has not run yet: the caller starts it. */
  get ready(): boolean {
    return !this.#started && !this.ended && this.#entry !== undefined && this.#suspendCount === 0;
  }

  /** Marks the thread as running its state (the routines start it once). */
  start(): TaskEntry {
    this.#started = true;
    return this.#entry!;
  }

  /** thread_set_state, after validation: the state to run when resumed. */
  setState(state: ThreadStateJs, entry: TaskEntry): void {
    this.#state = state;
    this.#entry = entry;
    if (this.inException) this.renewed = true;
  }

  /** thread_suspend. Returns KERN_SUCCESS; KERN_TERMINATED once ended (xnu's answer for an inactive thread). */
  suspend(): number {
    if (this.ended) return KERN_TERMINATED;
    this.#suspendCount++;
    return KERN_SUCCESS;
  }

  /** thread_resume. Returns KERN_SUCCESS; KERN_FAILURE at count 0 (unchanged); KERN_TERMINATED once ended. */
  resume(): number {
    if (this.ended) return KERN_TERMINATED;
    if (this.#suspendCount === 0) return KERN_FAILURE;
    if (--this.#suspendCount === 0) this.#wake();
    return KERN_SUCCESS;
  }

  /** thread_abort: the kernel waits in progress end interrupted. Returns KERN_SUCCESS; KERN_TERMINATED once ended. */
  abort(): number {
    if (this.ended) return KERN_TERMINATED;
    const controller = this.#abort;
    this.#abort = new AbortController();
    controller.abort();
    return KERN_SUCCESS;
  }

  /**
   * The thread is over with `outcome` (its code settled, or it or its task was terminated):
   * joins settle, its waits end, and its kernel calls never return. Later calls do nothing.
   */
  end(outcome: ThreadOutcome): boolean {
    if (this.ended) return false;
    this.#outcome = outcome;
    this.exceptions.release();
    this.#abort.abort();
    this.#wake();
    for (const joiner of this.#joiners.splice(0)) joiner(outcome);
    return true;
  }

  join(): Promise<ThreadOutcome> {
    if (this.#outcome !== undefined) return Promise.resolve(this.#outcome);
    return new Promise((resolve) => this.#joiners.push(resolve));
  }

  /**
   * The suspension point: resolves once neither the thread nor its task is suspended; never
   * for an ended thread (or one whose task ends meanwhile).
   */
  async checkpoint(): Promise<void> {
    for (;;) {
      if (this.ended || this.task.state === 'terminated') return NEVER;
      if (this.#suspendCount > 0) await new Promise<void>((resolve) => this.#resumeWaiters.push(resolve));
      else if (this.task.suspendCount > 0) await this.task.whenRunnable();
      else return;
    }
  }

  /** Runs `wait` as a kernel wait of the thread (thread_info says TH_STATE_WAITING meanwhile). */
  async waiting<T>(wait: Promise<T>): Promise<T> {
    this.#waiting++;
    try {
      return await wait;
    } finally {
      this.#waiting--;
    }
  }

  info(): ThreadBasicInfo {
    const runState = this.ended ? TH_STATE_HALTED
      : this.#suspendCount > 0 || this.task.suspendCount > 0 ? TH_STATE_STOPPED
        : this.#waiting > 0 ? TH_STATE_WAITING : TH_STATE_RUNNING;
    return { thread: this.id, task: this.task.id, node: globalNode(this.task.node), suspendCount: this.#suspendCount, runState };
  }

  #wake(): void {
    for (const waiter of this.#resumeWaiters.splice(0)) waiter();
  }
}
