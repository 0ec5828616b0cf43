/**
 * The cross-node message fast path (NORMA's inter-node IPC, in one machine): a single-producer
 * single-consumer ring of variable-length records in a SharedArrayBuffer for each ordered pair of
 * nodes, and one doorbell word per node that all of its incoming rings share. Used by both ends.
 * Nothing here blocks: a full ring answers false (send by postMessage instead), and a consumer
 * sleeps with Atomics.waitAsync, never Atomics.wait, so a node's event loop keeps running.
 * The rings are in ring.ts, the doorbell in doorbell.ts; here, the loop that serves them.
 */
import type { Doorbell } from './doorbell.js';
import type { RingReader } from './ring.js';

/**
 * µs a serve loop polls its doorbell before sleeping, by default. Measured on a 2-core VM
 * (bench/channel.bench.ts, medians of 6 runs): with a core free for each node, a kmsg round trip
 * takes ~1.9 µs instead of ~57 µs (two waitAsync wake-ups); when the two nodes cannot run at once,
 * the adaptive spin costs nothing measurable where a fixed one makes round trips 3x slower.
 */
export const SERVE_DEFAULT_SPIN = 20;
/** Records delivered between turns of the event loop, by default. */
export const SERVE_DEFAULT_BATCH = 256;
/** Most sleeps between two tries at spinning, once spinning stopped paying (see ServeOptions.spin). */
const SPIN_MAX_BACKOFF = 64;

export interface ServeOptions {
  /** Stops the loop: serve resolves once the current drain returns, leaving no wait behind. */
  readonly signal?: AbortSignal;
  /**
   * µs to poll the doorbell when the rings run dry, before sleeping (default SERVE_DEFAULT_SPIN;
   * 0: sleep at once). Only after this node rang another (sent), since an answer is then likely;
   * the event loop runs only microtasks meanwhile. Adaptive: a spin that ends in sleep anyway
   * (the peer could not run, or nothing was coming) turns spinning off for the next 1, 2, 4 ...
   * SPIN_MAX_BACKOFF such sleeps, so an idle or CPU-starved node wastes little.
   */
  readonly spin?: number;
  /** false: spin the full budget before every sleep (for measurements; see SERVE_DEFAULT_SPIN). */
  readonly adaptive?: boolean;
  /** Records delivered before yielding to the event loop, so I/O and timers still run under load. */
  readonly batch?: number;
  /** Called when another node said a queue place may be free for this node's blocked senders. */
  readonly onPlaces?: () => void;
}

/**
 * A node's receive loop: drains every incoming ring, then waits on the node's doorbell, until
 * `signal` aborts. `readers[i]` is the ring from node i (null at the node's own index);
 * `onRecord(record, from)` sees each record in ring order, valid only during the call.
 * Resolves when stopped; rejects with the first exception `onRecord` throws (that record and
 * those before it are consumed). A stop during the wait rings our own doorbell to wake it.
 */
export async function serve(readers: readonly (RingReader | null)[], doorbell: Doorbell,
  onRecord: (record: Uint8Array, from: number) => void, options: ServeOptions = {}): Promise<void> {
  const { signal, spin = SERVE_DEFAULT_SPIN, batch = SERVE_DEFAULT_BATCH, adaptive = true, onPlaces } = options;
  if (!(spin >= 0 && spin < Infinity)) throw new RangeError(`options.spin must be a non-negative number of µs, not ${spin}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`options.batch must be a positive integer, not ${batch}`);
  const incoming: { reader: RingReader; visit: (record: Uint8Array) => void }[] = [];
  readers.forEach((reader, from) => {
    if (reader !== null) incoming.push({ reader, visit: (record) => onRecord(record, from) });
  });
  const pending = (): boolean => incoming.some(({ reader }) => !reader.empty) || (onPlaces !== undefined && doorbell.placesAsked);
  const stop = (): void => doorbell.ring(doorbell.node);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    let sinceTurn = 0;
    let budget = spin;
    let backoff = 0;
    let skip = 0;
    let active = false;
    while (signal?.aborted !== true) {
      const seen = doorbell.sequence;
      let drained = 0;
      if (onPlaces !== undefined && doorbell.takePlaces()) {
        onPlaces();
        drained++;
      }
      for (const { reader, visit } of incoming) drained += reader.drain(visit);
      if (drained > 0) {
        sinceTurn += drained;
        if (sinceTurn >= batch) {
          sinceTurn = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
      }
      // Spin when we delivered or sent something since we last slept: an answer, or the next
      // record of a stream, is then likely on its way. The spin lets what the records set off
      // run to its end (doorbell.ts), so a reply our tasks send meanwhile finds us spinning.
      // A spin ended by the bump of a record we had already drained leaves us active, so the
      // next one still waits for the answer. An idle node sleeps at once.
      if (drained > 0) active = true;
      const rang = doorbell.takeRang() || active;
      const micros = rang ? budget : 0;
      const outcome = await doorbell.wait(pending, micros, seen);
      if (outcome === 'ok' || outcome === 'timed-out') active = false;
      if (outcome === 'ok') sinceTurn = 0;
      if (!adaptive || spin === 0 || !rang) continue;
      if (micros > 0 && outcome !== 'ok') {
        backoff = 0;
      } else if (micros > 0) {
        // Spun, then slept anyway: spinning did not pay this time (see ServeOptions.spin).
        backoff = Math.min(2 * backoff || 1, SPIN_MAX_BACKOFF);
        skip = backoff;
        budget = 0;
      } else if (outcome === 'ok' && --skip <= 0) {
        budget = spin;
      }
    }
  } finally {
    signal?.removeEventListener('abort', stop);
  }
}
