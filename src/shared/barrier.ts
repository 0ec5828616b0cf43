/**
 * A reusable barrier in shared memory, for threads on any nodes: two Int32 words in a region
 * every party maps (shared by inheritance or clone), so Atomics reach it from every node.
 *
 *   Int32[0]  arrived: parties arrived in the current generation
 *   Int32[1]  generation: bumped by the last party to arrive, which wakes the others
 *
 * A party reads the generation before it counts itself in, so the generation it waits to see
 * change is the one it arrived in, however early the last party comes. The last one resets the
 * count before bumping the generation, so a party racing ahead into the next generation counts
 * from 0. Waiting goes through a thread's `wait` (Atomics.waitAsync behind the call gate), so
 * a waiting thread never blocks its node, and thread_abort ends the wait.
 */
import { KERN_ABORTED, KERN_INVALID_ARGUMENT } from './constants.js';
import type { WaitResult } from './context.js';
import { KernError } from './errors.js';

/** Bytes a Barrier takes: put it at any 4-byte aligned address of shared memory. */
export const BARRIER_BYTES = 8;

/** What a Barrier waits with: a ThreadContext. */
export interface BarrierWaiter {
  wait(view: Int32Array, index: number, value: number, timeout?: number): Promise<WaitResult>;
}

export class Barrier {
  readonly words: Int32Array;
  readonly parties: number;

  /**
   * A barrier for `parties` threads over `words` (two Int32s, e.g. `context.view(address,
   * BARRIER_BYTES, Int32Array)`). Every party makes its own Barrier over the same memory;
   * zeroed memory is a fresh barrier.
   */
  constructor(words: Int32Array, parties: number) {
    if (!(words instanceof Int32Array) || words.length < 2 || !(words.buffer instanceof SharedArrayBuffer)) {
      throw new KernError(KERN_INVALID_ARGUMENT, 'Barrier: words must be two Int32s over a SharedArrayBuffer');
    }
    if (!Number.isInteger(parties) || parties < 1) throw new KernError(KERN_INVALID_ARGUMENT, 'Barrier: parties must be a positive integer');
    this.words = words;
    this.parties = parties;
  }

  /** The generations completed so far. */
  get generation(): number { return Atomics.load(this.words, 1); }

  /**
   * Waits until all parties arrived; resolves true for the last one (the one that may, say,
   * swap buffers before the next generation) and false for the others. Rejects with
   * KernError(KERN_ABORTED) when the wait is aborted (thread_abort); the party stays counted.
   */
  async wait(waiter: BarrierWaiter): Promise<boolean> {
    const generation = Atomics.load(this.words, 1);
    if (Atomics.add(this.words, 0, 1) + 1 === this.parties) {
      Atomics.store(this.words, 0, 0);
      Atomics.add(this.words, 1, 1);
      Atomics.notify(this.words, 1);
      return true;
    }
    while (Atomics.load(this.words, 1) === generation) {
      if (await waiter.wait(this.words, 1, generation) === 'interrupted') {
        throw new KernError(KERN_ABORTED, 'Barrier.wait was interrupted');
      }
    }
    return false;
  }
}
