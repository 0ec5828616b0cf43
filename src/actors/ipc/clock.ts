/**
 * The one clock behind every IPC wait (a receive, a queue on its way, a full queue): NodeIpc is
 * given one (systemClock unless a test injects its own), and every timeout is a `Deadline` armed
 * on it, so a simulated clock reaches each of them.
 */

/** The timer source behind send and receive timeouts; tests inject a simulated one. */
export interface Clock {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's own timers. setTimeout fires at once past 2^31 − 1 ms, so long waits are chained. */
const TIMER_MAX = 0x7fffffff;
export const systemClock: Clock = {
  setTimeout(callback, ms) {
    const handle: { timer?: ReturnType<typeof setTimeout> } = {};
    const arm = (left: number): void => {
      handle.timer = left > TIMER_MAX
        ? setTimeout(() => arm(left - TIMER_MAX), TIMER_MAX)
        : setTimeout(callback, left);
    };
    arm(ms);
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout((handle as { timer?: ReturnType<typeof setTimeout> }).timer);
  },
};

/**
 * One call's time limit, however many waits the call makes: a single timer on the clock, armed
 * when the call first waits (a call that never waits makes none; none at all for Infinity; for
 * 0, Mach's "never wait", the deadline has passed already). Each wait subscribes to its expiry
 * and unsubscribes when served; the call cancels the deadline when it returns, which clears the
 * timer. A thread's abort signal (thread_abort, thread_terminate) ends it early the same way,
 * with `aborted` set, so every wait of the call ends at once and the caller answers Mach's
 * "interrupted" code instead of "timed out".
 */
export class Deadline {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #signal: AbortSignal | undefined;
  #timer: unknown = null;
  #onAbort: (() => void) | null = null;
  /** Armed, or cancelled: no timer is made from now on. */
  #settled = false;
  #expired: boolean;
  #aborted = false;
  readonly #waits = new Set<() => void>();

  constructor(clock: Clock, timeoutMs: number, signal?: AbortSignal) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
    this.#signal = signal;
    this.#aborted = signal?.aborted === true;
    this.#expired = timeoutMs <= 0 || this.#aborted;
  }

  get expired(): boolean { return this.#expired; }
  /** The deadline ended by abort, not by time. */
  get aborted(): boolean { return this.#aborted; }

  /** Starts the timer and abort listener if the deadline can still pass; true if either runs. */
  #arm(): boolean {
    if (!this.#settled && !this.#expired) {
      this.#settled = true;
      if (this.#timeoutMs !== Infinity) {
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = null;
          this.#expire();
        }, this.#timeoutMs);
      }
      if (this.#signal !== undefined) {
        this.#onAbort = () => {
          this.#aborted = true;
          this.#expire();
        };
        this.#signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
    return this.#timer !== null || this.#onAbort !== null;
  }

  #expire(): void {
    this.#disarm();
    this.#expired = true;
    for (const expire of [...this.#waits]) expire();
    this.#waits.clear();
  }

  #disarm(): void {
    if (this.#timer !== null) this.#clock.clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#onAbort !== null) this.#signal!.removeEventListener('abort', this.#onAbort);
    this.#onAbort = null;
  }

  /**
   * Runs `expire` when the deadline passes (never, if it has: the caller checks `expired` first).
   * Returns the unsubscription, for a wait that was served first.
   */
  onExpiry(expire: () => void): () => void {
    if (this.#expired || !this.#arm()) return () => {};
    this.#waits.add(expire);
    return () => { this.#waits.delete(expire); };
  }

  /** `promise`, or `expired` once the deadline passes first. */
  race<T, E>(promise: Promise<T>, expired: E): Promise<T | E> {
    if (this.#expired) return Promise.resolve(expired);
    if (!this.#arm()) return promise;
    return new Promise((resolve, reject) => {
      const cancel = this.onExpiry(() => resolve(expired));
      promise.then((value) => { cancel(); resolve(value); }, (error: unknown) => { cancel(); reject(error); });
    });
  }

  /** The call is over: the timer is cleared and no wait expires any more. */
  cancel(): void {
    this.#disarm();
    this.#settled = true;
    this.#waits.clear();
  }
}
