/**
 * User code run as a task (NodeKernel.taskExecute): finding the export, running it while this
 * node's activity word names the task, and failures described in words a caller can act on, so
 * no module, export, return value or thrown value can take the node down.
 */
import { workerData } from 'node:worker_threads';
import {
  KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_SUCCESS, KERN_TERMINATED, MACH_RCV_INTERRUPTED, MACH_RCV_TIMEOUT,
  MACH_SEND_INTERRUPTED, MACH_SEND_MSG, MACH_SEND_TIMEOUT,
} from '../../shared/constants.js';
import { NodeActivity } from '../../shared/node-activity.js';
import type { NodeApi, SerializedError } from '../../shared/protocol.js';
import type { MachMsgTrap, TaskContext, ViewType } from '../../shared/context.js';
import { KernError } from '../../shared/errors.js';
import { taskIpcMach, type TaskCall } from '../../shared/ipc-facade.js';
import { taskCreateMach, taskMach, type CallOnTask, type ForkOnTask } from '../../shared/task-facade.js';
import type { TaskActor } from './task.js';
import { nextTurn, sliceLeft } from './timeslice.js';
import { globalNode, nodeBase } from './node-base.js';

export type TaskEntry = (...args: unknown[]) => unknown;
export type CodeReply = { kr: number; value?: unknown; error?: SerializedError };

/** The host hands each node its activity word as workerData (see NodeHost); none outside a node. */
const activity: NodeActivity | undefined = (workerData as { activity?: unknown } | null)?.activity instanceof SharedArrayBuffer
  ? new NodeActivity((workerData as { activity: SharedArrayBuffer }).activity)
  : undefined;
let leaving = false;

/** Import failures that mean the specifier names no module we can load: the caller's mistake. */
const NOT_A_MODULE = new Set([
  'ERR_MODULE_NOT_FOUND', 'ERR_UNSUPPORTED_DIR_IMPORT', 'ERR_INVALID_URL', 'ERR_UNSUPPORTED_ESM_URL_SCHEME',
  'ERR_PACKAGE_PATH_NOT_EXPORTED', 'ERR_INVALID_MODULE_SPECIFIER', 'ERR_UNKNOWN_FILE_EXTENSION',
]);

/**
 * The function `exportName` of the module at `moduleUrl`.
 * Returns KERN_SUCCESS with it; KERN_INVALID_ARGUMENT, with a message naming module and export,
 * for a relative path (the caller resolves those: on a node they would resolve against the
 * package's own files), a module that cannot be found, or an export that is missing or is not a
 * function; KERN_FAILURE with the error when the module throws while loading.
 */
export async function loadExport(moduleUrl: string, exportName: string):
  Promise<{ kr: typeof KERN_SUCCESS; entry: TaskEntry } | { kr: number; error: SerializedError }> {
  if (/^\.\.?(\/|\\|$)/.test(moduleUrl)) {
    return refuse(`module '${moduleUrl}' is a relative path: give an absolute path or a URL`);
  }
  let module: Record<string, unknown>;
  try {
    module = await import(moduleUrl) as Record<string, unknown>;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && NOT_A_MODULE.has(code)) return refuse(`cannot find module '${moduleUrl}' (${code})`);
    const thrown = thrownError(error);
    return { kr: KERN_FAILURE, error: { ...thrown, message: `module '${moduleUrl}' failed to load: ${thrown.message}` } };
  }
  if (!(exportName in module)) return refuse(`module '${moduleUrl}' has no export '${exportName}'`);
  const entry = module[exportName];
  if (typeof entry !== 'function') {
    return refuse(`export '${exportName}' of module '${moduleUrl}' is ${describe(entry)}, not a function`);
  }
  return { kr: KERN_SUCCESS, entry: entry as TaskEntry };
}

function refuse(message: string): { kr: number; error: SerializedError } {
  return { kr: KERN_INVALID_ARGUMENT, error: { name: 'Error', message } };
}

/**
 * Runs `exportName` of the module at `moduleUrl` on node `node`, in `task` (undefined when no
 * live task `id` is there): it receives the TaskContext `context` makes and `args`. Waits while
 * the task is suspended. Every failure but KERN_TERMINATED carries an error whose message names
 * the module and export or what the code threw.
 * Returns KERN_SUCCESS with the function's result; KERN_INVALID_ARGUMENT for an unknown task,
 * malformed arguments, a relative or missing module, or an export that is missing or not a
 * function; KERN_TERMINATED when the task ends before it could run; KERN_FAILURE when loading
 * or running the code throws. A result that cannot be cloned is answered by node-main with
 * KERN_FAILURE (see uncloneableReply).
 */
export async function executeTask(task: TaskActor | undefined, id: number, node: number, moduleUrl: string,
  exportName: string, args: readonly unknown[], context: (task: TaskActor) => TaskContext): Promise<CodeReply> {
  if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, error: { name: 'Error', message: `no task ${id} on node ${node}` } };
  if (typeof moduleUrl !== 'string' || typeof exportName !== 'string' || !Array.isArray(args)) {
    return { kr: KERN_INVALID_ARGUMENT, error: { name: 'TypeError', message: 'module and export must be strings, args an array' } };
  }
  const loaded = await loadExport(moduleUrl, exportName);
  if (!('entry' in loaded)) return loaded;
  if (!await task.whenRunnable()) return { kr: KERN_TERMINATED };
  return runTaskCode(task.id, loaded.entry, [context(task), ...args]);
}

/**
 * Runs task code of `task` and settles with what it returned or threw (KERN_FAILURE). Its
 * synchronous part runs with the activity word naming the task.
 */
export async function runTaskCode(task: number, entry: TaskEntry, args: readonly unknown[], thread = 0): Promise<CodeReply> {
  let result: unknown;
  activity?.enter(task, thread);
  try {
    result = entry(...args);
  } catch (error) {
    return { kr: KERN_FAILURE, error: thrownError(error) };
  } finally {
    activity?.leave();
  }
  try {
    return { kr: KERN_SUCCESS, value: await result };
  } catch (error) {
    return { kr: KERN_FAILURE, error: thrownError(error) };
  }
}

/**
 * Task code of `task` runs again (it called the kernel, or a kernel call it awaited settled).
 * The word names the task until the node next returns to its event loop: a continuation after
 * an `await` cannot be seen ending, but nothing else runs before the loop turns.
 */
export function taskCodeRuns(task: number, thread = 0): void {
  if (activity === undefined) return;
  activity.enter(task, thread);
  if (leaving) return;
  leaving = true;
  setImmediate(() => {
    leaving = false;
    activity.leave();
  });
}

/**
 * A kernel call made by task code: its settling resumes that code. One that answered at once
 * resumes it in this turn, already marked; one that waited marks it again when it settles.
 */
export function resumesTaskCode<T>(task: number, reply: T | Promise<T>, thread = 0): Promise<T> {
  if (!(reply instanceof Promise)) {
    taskCodeRuns(task, thread);
    return Promise.resolve(reply);
  }
  if (activity === undefined) return reply;
  taskCodeRuns(task, thread);
  return reply.then((value) => {
    taskCodeRuns(task, thread);
    return value;
  });
}

/**
 * mach_msg_trap (shared/context.ts) over `call`, a node routine call of the task: the routine
 * with both timeouts 0, which answers synchronously, once `mayEnter` lets the caller in.
 */
export function machMsgTrap(task: number, thread: number, call: (method: keyof NodeApi, args: unknown[]) => unknown,
  mayEnter: () => AbortSignal | undefined): MachMsgTrap['mach_msg_trap'] {
  return (msg, option, _sendSize, rcvSize = 0, rcvName = 0) => {
    const signal = mayEnter();
    if (signal === undefined || !Number.isInteger(option)) {
      return { kr: !Number.isInteger(option) ? KERN_INVALID_ARGUMENT : option & MACH_SEND_MSG ? MACH_SEND_INTERRUPTED : MACH_RCV_INTERRUPTED };
    }
    if (!Number.isSafeInteger(rcvSize) || rcvSize < 0) return { kr: KERN_INVALID_ARGUMENT };
    taskCodeRuns(task, thread);
    return call('machMsg', [msg, option | MACH_SEND_TIMEOUT | MACH_RCV_TIMEOUT, rcvName, 0, rcvSize, signal]) as
      ReturnType<MachMsgTrap['mach_msg_trap']>;
  };
}

/** Task code outside threads has no gate to stop at: only the timeslice holds it. */
const NO_ABORT = new AbortController().signal;

/**
 * What task code of `task` gets: `call` runs a routine of this node for the task, `onTask` one
 * naming a task by its kernel port (task-port.ts). Each call into the kernel, and each view
 * taken, marks the task's code as running again.
 */
export function taskContext(task: TaskActor, pageSize: number,
  call: (method: keyof NodeApi, args: unknown[]) => unknown, onTask: CallOnTask<number>, fork: ForkOnTask, thread = 0): TaskContext {
  // A thread's calls pass its gate, which keeps the timeslice (syscall.ts); code run by
  // task.execute has no gate, so its calls keep it here: after a slice of calls that all
  // completed at once, the next waits for the event loop to turn.
  const mach = ((method: keyof NodeApi, ...args: unknown[]) => thread !== 0 || sliceLeft()
    ? resumesTaskCode(task.id, call(method, args), thread)
    : nextTurn().then(() => resumesTaskCode(task.id, call(method, args), thread))) as TaskCall;
  const onTaskPort = onTask as (name: number, ...rest: unknown[]) => Promise<{ kr: number }>;
  const callOn = ((name: number, ...rest: unknown[]) => resumesTaskCode(task.id, onTaskPort(name, ...rest), thread)) as CallOnTask<number>;
  return {
    node: globalNode(task.node),
    task: task.id,
    pageSize,
    mach: {
      ...taskIpcMach(mach), ...taskMach(callOn),
      // Task code names nodes globally; its node kernel knows only its own process's (a cluster
      // member's share starts at nodeBase): a node outside them is out of range here.
      ...taskCreateMach((parent, mode, inherit, childNode) => resumesTaskCode(task.id,
        fork(parent, mode, inherit, typeof childNode === 'number' ? childNode - nodeBase : childNode), thread)),
      mach_msg_trap: machMsgTrap(task.id, thread, call, () => sliceLeft() ? NO_ABORT : undefined),
    },
    view: ((address: number, size: number, type: ViewType<ArrayBufferView> = Uint8Array) => {
      taskCodeRuns(task.id, thread);
      const element = (type as { BYTES_PER_ELEMENT?: unknown } | null)?.BYTES_PER_ELEMENT;
      if (typeof element !== 'number' || address % element !== 0 || size % element !== 0) {
        throw new KernError(KERN_INVALID_ARGUMENT, `view(${address}, ${size}): not a typed-array type, or address and size not multiples of its element size`);
      }
      const view = task.map.view(address, size);
      if (view.kr !== KERN_SUCCESS) throw new KernError(view.kr, `view(${address}, ${size})`);
      return new type(view.sab!, view.byteOffset!, view.length! / element);
    }) as TaskContext['view'],
  };
}

/** Any thrown value as plain strings, which always cross to another thread. */
export function thrownError(value: unknown): SerializedError {
  if (safely(() => value instanceof Error) === true) {
    const error = value as Error;
    const name = safeString(safely(() => error.name), 'Error');
    const message = safeString(safely(() => error.message), '');
    const stack = safeString(safely(() => error.stack), '');
    return stack === '' ? { name, message } : { name, message, stack };
  }
  if (typeof value === 'string') return { name: 'Error', message: value };
  return { name: 'Error', message: `task code threw ${describe(value)}` };
}

function safeString(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

/**
 * The reply that replaces one the node could not post because structured clone refused it:
 * KERN_FAILURE naming what it refused and where (task code's return value, or a routine's reply).
 */
export function uncloneableReply(method: string, result: unknown, error: unknown): { kr: number; error: SerializedError } {
  const returned = (method === 'taskExecute' || method === 'threadJoin') && typeof result === 'object' && result !== null && 'value' in result;
  const what = returned ? "task code's return value" : `the reply of ${method}`;
  const found = safely(() => findUncloneable(returned ? (result as { value: unknown }).value : result, '', new Set(), { left: 10_000 }));
  const reason = found ?? truncate(safeString((error as { message?: unknown } | null)?.message, 'not cloneable'), 200);
  return { kr: KERN_FAILURE, error: { name: 'DataCloneError', message: `${what} cannot be cloned: ${reason}` } };
}

/** The first thing structured clone refuses in `value`, with its path; undefined if none is found. */
function findUncloneable(value: unknown, path: string, seen: Set<object>, budget: { left: number }): string | undefined {
  const at = path === '' ? '' : ` at ${path}`;
  if (typeof value === 'function' || typeof value === 'symbol') return `${describe(value)}${at}`;
  if (value === null || typeof value !== 'object' || seen.has(value) || --budget.left < 0) return undefined;
  seen.add(value);
  if (value instanceof Promise || value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) {
    return `${describe(value)}${at}`;
  }
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof SharedArrayBuffer ||
      value instanceof Date || value instanceof RegExp || value instanceof Error) return undefined;
  if (value instanceof Map) {
    for (const [key, item] of value) {
      const found = findUncloneable(key, `${path}<key>`, seen, budget) ??
        findUncloneable(item, `${path}.get(${describe(key)})`, seen, budget);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (value instanceof Set) {
    for (const item of value) {
      const found = findUncloneable(item, `${path}<item>`, seen, budget);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const step = Array.isArray(value) ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
    const found = findUncloneable((value as Record<string, unknown>)[key], `${path}${step}`, seen, budget);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A short name for a value in a message: its type, and its name or contents where short. */
function describe(value: unknown): string {
  switch (typeof value) {
    case 'function': return `function ${value.name === '' ? '(anonymous)' : value.name}`;
    case 'symbol': return safely(() => value.toString()) ?? 'a symbol';
    case 'string': return truncate(JSON.stringify(value), 60);
    case 'undefined': return 'undefined';
    case 'object': {
      if (value === null) return 'null';
      const name = safely(() => (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name);
      if (typeof name !== 'string' || name === '' || name === 'Object') return 'an object';
      return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
    }
    default: return String(value);
  }
}

function safely<T>(run: () => T): T | undefined {
  try {
    return run();
  } catch {
    return undefined;
  }
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}
