/**
 * Thread handles on the host: the idiomatic face of a thread (Task.spawn, Task.threads,
 * kernel.mach's thread_act_t). Each method resolves with the routine's out-value or rejects
 * with a KernError; kernel.mach calls the same routines and returns the kern_return_t.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EXC_MASK_ALL, EXCEPTION_DEFAULT, KERN_SUCCESS, KERN_TERMINATED } from './shared/constants.js';
import { KernError } from './shared/errors.js';
import type { ExceptionPortsReply, NodeApi, Reply, RestParameters, SerializedError } from './shared/protocol.js';
import {
  NORMA_THREAD_STATE_JS, THREAD_BASIC_INFO, type ThreadBasicInfo, type ThreadId, type ThreadStateJs,
} from './shared/thread-types.js';
import type { NodeId } from './shared/types.js';
import type { TaskHandle, TaskRouter, ThreadHandle } from './router.js';

type ThreadRoutine = { [K in keyof NodeApi]: Parameters<NodeApi[K]>[0] extends ThreadId ? K : never }[keyof NodeApi];

export class Thread implements ThreadHandle {
  readonly id: ThreadId;
  readonly node: NodeId;
  readonly task: TaskHandle;
  readonly #kernel: TaskRouter<TaskHandle, Thread>;
  #joined: Promise<unknown> | undefined;

  /** @internal */
  constructor(kernel: TaskRouter<never, Thread>, task: TaskHandle, id: ThreadId) {
    this.#kernel = kernel as unknown as TaskRouter<TaskHandle, Thread>;
    this.task = task;
    this.id = id;
    this.node = task.node;
  }

  /** @internal True when `kernel` made this handle. */
  ownedBy(kernel: unknown): boolean { return this.#kernel === kernel; }

  /** @internal One thread routine on the thread's node. */
  request<K extends ThreadRoutine>(method: K, ...args: RestParameters<NodeApi[K]>): Promise<Reply<K>> {
    return this.#kernel.request(this.node, method, ...([this.id, ...args] as unknown as Parameters<NodeApi[K]>));
  }

  /**
   * The thread's result once it ends. Its code's throw or rejection raises an exception
   * (EXC_SOFTWARE) to its handlers: one that answers KERN_SUCCESS resumes it (the state it set,
   * or an end resolving undefined). Rejects with KernError: KERN_FAILURE when no handler took
   * it, `cause` holding the error's name, message and stack; KERN_TERMINATED when it or its
   * task was terminated; KERN_NODE_DOWN.
   */
  join(): Promise<unknown> {
    this.#joined ??= this.request('threadJoin').then((reply) => {
      if (reply.kr === KERN_SUCCESS) return reply.value;
      throw codeError(reply.kr, `thread ${this.id}`, reply.error);
    });
    return this.#joined;
  }

  /** thread_suspend: it stops at its next kernel call, yield() or wait(). */
  async suspend(): Promise<void> { check((await this.request('threadSuspend')).kr, 'thread_suspend'); }
  /** thread_resume. */
  async resume(): Promise<void> { check((await this.request('threadResume')).kr, 'thread_resume'); }
  /** thread_terminate: its join rejects with KERN_TERMINATED; it never returns from the kernel. */
  async terminate(): Promise<void> { check((await this.request('threadTerminate')).kr, 'thread_terminate'); }
  /** thread_abort: its kernel wait in progress ends (MACH_RCV_INTERRUPTED, 'interrupted', ...). */
  async abort(): Promise<void> { check((await this.request('threadAbort')).kr, 'thread_abort'); }

  /** thread_info (THREAD_BASIC_INFO): suspend count and run state (TH_STATE_*). */
  async info(): Promise<ThreadBasicInfo> {
    const reply = await this.request('threadInfo', THREAD_BASIC_INFO);
    check(reply.kr, 'thread_info');
    return reply.info!;
  }

  /** thread_get_state (NORMA_THREAD_STATE_JS); undefined before a state is set. */
  async getState(): Promise<ThreadStateJs | undefined> {
    const reply = await this.request('threadGetState', NORMA_THREAD_STATE_JS);
    check(reply.kr, 'thread_get_state');
    return reply.state;
  }

  /** thread_set_state (NORMA_THREAD_STATE_JS): what it runs once resumed. */
  async setState(module: string | { readonly href: string }, entry: string, ...args: unknown[]): Promise<void> {
    const reply = await this.request('threadSetState', NORMA_THREAD_STATE_JS, jsState(module, entry, args));
    if (reply.kr !== KERN_SUCCESS) throw codeError(reply.kr, 'thread_set_state', reply.error);
  }

  /** thread_set_exception_ports: `port` is a send right named in the thread's task. */
  async setExceptionPorts(mask: number, port: number, behavior: number = EXCEPTION_DEFAULT,
    flavor: number = NORMA_THREAD_STATE_JS): Promise<void> {
    check((await this.request('threadSetExceptionPorts', mask, port, behavior, flavor)).kr, 'thread_set_exception_ports');
  }

  /** thread_get_exception_ports, as the man page's out-values (names in the thread's task). */
  async exceptionPorts(mask: number = EXC_MASK_ALL): Promise<ExceptionPortsReply> {
    const reply = await this.request('threadGetExceptionPorts', mask);
    check(reply.kr, 'thread_get_exception_ports');
    return reply;
  }

  /** thread_swap_exception_ports: set, answering the handlers from before. */
  async swapExceptionPorts(mask: number, port: number, behavior: number = EXCEPTION_DEFAULT,
    flavor: number = NORMA_THREAD_STATE_JS): Promise<ExceptionPortsReply> {
    const reply = await this.request('threadSwapExceptionPorts', mask, port, behavior, flavor);
    check(reply.kr, 'thread_swap_exception_ports');
    return reply;
  }

  toString(): string { return `thread ${this.id} of task ${this.task.id} on node ${this.node}`; }
}

/** A NORMA_THREAD_STATE_JS state with its module as a node can import it. */
export function jsState(module: unknown, entry: unknown, args: readonly unknown[]): ThreadStateJs {
  return { module: moduleSpecifier(module) ?? module, entry, args } as ThreadStateJs;
}

/**
 * A module specifier a node can import: relative paths resolve against the caller's working
 * directory here, for on the node they would resolve against this package's own files.
 */
export function moduleSpecifier(module: unknown): string | undefined {
  // A URL, or anything shaped like one (the published types need no DOM or @types/node URL).
  if (typeof module === 'object' && module !== null && typeof (module as { href?: unknown }).href === 'string') {
    return (module as { href: string }).href;
  }
  if (typeof module !== 'string') return undefined;
  if (/^\.\.?([\\/]|$)/.test(module)) return pathToFileURL(resolve(process.cwd(), module)).href;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  return module;
}

/** A KernError carrying the node's explanation (and the thrown error as `cause`). */
export function codeError(kr: number, routine: string, error: SerializedError | undefined): KernError {
  if (error === undefined) return new KernError(kr, kr === KERN_TERMINATED ? `${routine} was terminated` : routine);
  const cause = Object.assign(new Error(error.message), error);
  return new KernError(kr, `${routine}: ${error.message}`, { cause });
}

function check(kr: number, routine: string): void {
  if (kr !== KERN_SUCCESS) throw new KernError(kr, routine);
}
