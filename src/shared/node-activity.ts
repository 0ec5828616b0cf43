/**
 * What a node is running, in a few words of shared memory: a node deep in a synchronous stretch
 * of task code cannot answer messages, but the host can still read this and say so.
 *
 *   Int32[0]    sequence: odd while the node is writing the two words below (a seqlock)
 *   Float64[1]  the task whose code runs now, 0 when none
 *   Float64[2]  since when, in Date.now() milliseconds (both threads share the wall clock)
 *   Float64[3]  the thread (kern/thread.ts) whose code it is, 0 for task.execute code
 *
 * One writer (the node), any number of readers (the host). Task and thread ids never are 0.
 */
import type { NodeId } from './types.js';

export const ACTIVITY_BYTES = 32;

export interface NodeActivityState {
  /** The task whose code the node is running now. */
  readonly task: number;
  /** Date.now() when it started running without returning to the node's event loop. */
  readonly since: number;
  /** The thread of that task whose code it is; absent for code run by task.execute. */
  readonly thread?: number;
}

export class NodeActivity {
  readonly sab: SharedArrayBuffer;
  readonly #sequence: Int32Array;
  readonly #words: Float64Array;
  /** What this writer last wrote: compared without reading shared memory on every call. */
  #task = 0;
  #thread = 0;

  constructor(sab: SharedArrayBuffer = new SharedArrayBuffer(ACTIVITY_BYTES)) {
    this.sab = sab;
    this.#sequence = new Int32Array(sab, 0, 1);
    this.#words = new Float64Array(sab, 8, 3);
  }

  /** Node: code of `task` (of its `thread`, 0 for none) runs from now on; a stretch of the same code keeps its start. */
  enter(task: number, thread = 0): void {
    if (this.#task === task && this.#thread === thread) return;
    this.#write(task, Date.now(), thread);
  }

  /** Node: no task code runs now. */
  leave(): void {
    if (this.#task !== 0) this.#write(0, 0, 0);
  }

  #write(task: number, since: number, thread: number): void {
    this.#task = task;
    this.#thread = thread;
    Atomics.add(this.#sequence, 0, 1);
    this.#words[0] = task;
    this.#words[1] = since;
    this.#words[2] = thread;
    Atomics.add(this.#sequence, 0, 1);
  }

  /** Host: the task running now and since when, or undefined when the node runs no task code. */
  read(): NodeActivityState | undefined {
    // The writer never waits, so a reader that keeps meeting a write in progress gives up.
    for (let tries = 0; tries < 8; tries++) {
      const before = Atomics.load(this.#sequence, 0);
      if ((before & 1) !== 0) continue;
      const task = this.#words[0]!;
      const since = this.#words[1]!;
      const thread = this.#words[2]!;
      if (Atomics.load(this.#sequence, 0) !== before) continue;
      return task === 0 ? undefined : thread === 0 ? { task, since } : { task, since, thread };
    }
    return undefined;
  }
}

/** What a node runs now (Kernel.nodeActivity). */
export interface NodeActivityReport {
  readonly node: NodeId;
  /** The task whose code holds the node now, if any, and since when (Date.now() ms). */
  readonly task?: number;
  /** The thread of that task whose code it is (absent for task.execute code). */
  readonly thread?: number;
  readonly since?: number;
  /** Calls posted to the node that it has not answered yet. */
  readonly pending: number;
}
