/**
 * The cross-node message fast path (NORMA's inter-node IPC, in one machine): a single-producer
 * single-consumer ring of variable-length records in a SharedArrayBuffer for each ordered pair of
 * nodes, and one doorbell word per node that all of its incoming rings share. Used by both ends.
 * Nothing here blocks: a full ring answers false (send by postMessage instead), and a consumer
 * sleeps with Atomics.waitAsync, never Atomics.wait, so a node's event loop keeps running.
 */
import { encodeKmsg, encodedLength, decodeKmsg, type WireKmsg } from '../shared/kmsg-wire.js';

/**
 * A ring, one per ordered pair of nodes (src → dst):
 *
 *   byte 0          4                64          68               128                      128 + capacity
 *        +----------+----------------+-----------+----------------+--------------------------+
 *        | head i32 | (pad)          | tail i32  | (pad)          | data: records, wrapping  |
 *        +----------+----------------+-----------+----------------+--------------------------+
 *         written by the consumer     written by the producer
 *
 * head and tail are free-running byte counts (int32, wrapping): `tail - head` bytes are in use,
 * and the record at count `i` starts at data byte `i & (capacity - 1)`. Each sits alone on its
 * cache line, so the producer's stores never evict the consumer's line and back. A record:
 *
 *   +------------+------------+-------------------------+-----------+
 *   | length u32 | 0 u32      | payload: length bytes   | pad to 8  |
 *   +------------+------------+-------------------------+-----------+
 *
 * A length of RING_WRAP is no record: the rest of the data area is skipped and the next record
 * starts at data byte 0. Records never straddle the end, so a payload is one contiguous view.
 */
export const RING_HEADER_BYTES = 128;
export const RING_RECORD_HEADER_BYTES = 8;
export const RING_WRAP = 0xffffffff;
export const RING_MIN_CAPACITY = 64;
/** `tail - head` must stay below 2**31 for the int32 counters to order correctly. */
export const RING_MAX_CAPACITY = 2 ** 30;
const HEAD = 0;
const TAIL = 16;

/** A ring of `capacityBytes` of records (a power of two from 64 to 2**30), empty. */
export function createRing(capacityBytes: number): SharedArrayBuffer {
  checkCapacity(capacityBytes, 'capacityBytes');
  return new SharedArrayBuffer(RING_HEADER_BYTES + capacityBytes);
}

function checkCapacity(capacity: number, what: string): void {
  if (!Number.isInteger(capacity) || capacity < RING_MIN_CAPACITY || capacity > RING_MAX_CAPACITY ||
      (capacity & (capacity - 1)) !== 0) {
    throw new RangeError(`${what} must be a power of two from ${RING_MIN_CAPACITY} to 2**30, not ${capacity}`);
  }
}

const align8 = (length: number): number => (length + 7) & ~7;

/** The parts of a ring SAB both ends use. */
class RingView {
  readonly capacity: number;
  protected readonly indices: Int32Array;
  /** The data area as u32 words (record headers) and as bytes (payloads). */
  protected readonly words: Uint32Array;
  protected readonly bytes: Uint8Array;
  protected readonly view: DataView;

  constructor(sab: SharedArrayBuffer) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('ring must be a SharedArrayBuffer');
    this.capacity = sab.byteLength - RING_HEADER_BYTES;
    checkCapacity(this.capacity, 'ring data area');
    this.indices = new Int32Array(sab, 0, RING_HEADER_BYTES / 4);
    this.words = new Uint32Array(sab, RING_HEADER_BYTES);
    this.bytes = new Uint8Array(sab, RING_HEADER_BYTES);
    this.view = new DataView(sab, RING_HEADER_BYTES);
  }

  /**
   * The largest payload this ring takes: half the data area less a record header. Any record
   * that size fits an empty ring wherever its tail stands (a larger one might need the space its
   * own wrap marker wastes), so whether a write succeeds never depends on history alone.
   */
  get maxPayload(): number {
    return (this.capacity >>> 1) - RING_RECORD_HEADER_BYTES;
  }
}

/** The producer end of a ring. Only one thread may write a given ring. */
export class RingWriter extends RingView {
  /** Our tail: only this side writes it, so no load is needed to know it. */
  #tail: number;
  /**
   * The head as last read. A stale head only makes the ring look fuller than it is, so it is
   * reloaded only when the ring looks full: the common write touches no consumer cache line.
   */
  #head: number;
  /** The tail the record being filled will publish. */
  #next = 0;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.#tail = Atomics.load(this.indices, TAIL);
    this.#head = Atomics.load(this.indices, HEAD);
  }

  /**
   * Appends a record of `length` payload bytes, which `fill` writes at `bytes[offset..offset+length)`
   * (`bytes` is the whole data area). Returns false, having written nothing, when the ring has no
   * room (or `length` exceeds maxPayload): the caller sends some other way. Never waits.
   * If `fill` throws, nothing is published and the exception propagates.
   */
  tryWrite(length: number, fill: (bytes: Uint8Array, offset: number) => void): boolean {
    const at = this.#reserve(length);
    if (at < 0) return false;
    fill(this.bytes, at);
    this.#publish();
    return true;
  }

  /** tryWrite of `msg` in its wire form (kmsg-wire.ts). Throws RangeError for a malformed msg. */
  tryWriteKmsg(msg: WireKmsg): boolean {
    const at = this.#reserve(encodedLength(msg));
    if (at < 0) return false;
    encodeKmsg(msg, this.view, at);
    this.#publish();
    return true;
  }

  /** The data-area offset for a payload of `length` bytes, with its header written; -1 if full. */
  #reserve(length: number): number {
    if (!Number.isInteger(length) || length < 0) throw new RangeError(`length must be a non-negative integer, not ${length}`);
    const size = RING_RECORD_HEADER_BYTES + align8(length);
    const capacity = this.capacity;
    if (size > capacity >>> 1) return -1;
    let tail = this.#tail;
    let at = tail & (capacity - 1);
    const toEnd = capacity - at;
    // A record that does not fit before the end costs the rest of the area too (a wrap marker).
    const need = size <= toEnd ? size : toEnd + size;
    if (((tail - this.#head) >>> 0) + need > capacity) {
      this.#head = Atomics.load(this.indices, HEAD);
      if (((tail - this.#head) >>> 0) + need > capacity) return -1;
    }
    // Plain stores. Into space the consumer released: its reads of it happened-before its
    // Atomics.store of head, which our Atomics.load saw. Unseen until published: the consumer
    // reads nothing past the tail, and the store that publishes comes after these (#publish).
    if (size > toEnd) {
      this.words[at >> 2] = RING_WRAP;
      tail = (tail + toEnd) | 0;
      at = 0;
    }
    this.words[at >> 2] = length;
    this.words[(at >> 2) + 1] = 0;
    this.#next = (tail + size) | 0;
    return at + RING_RECORD_HEADER_BYTES;
  }

  /**
   * Publishes the record #reserve staged. The payload and header writes happen-before this
   * seq-cst store, so a consumer whose Atomics.load of tail returns this value sees them all.
   */
  #publish(): void {
    this.#tail = this.#next;
    Atomics.store(this.indices, TAIL, this.#next);
  }
}

/** The consumer end of a ring. Only one thread may read a given ring. */
export class RingReader extends RingView {
  /** Our head: only this side writes it. */
  #head: number;

  constructor(sab: SharedArrayBuffer) {
    super(sab);
    this.#head = Atomics.load(this.indices, HEAD);
  }

  /** True when no published record is waiting. */
  get empty(): boolean {
    return Atomics.load(this.indices, TAIL) === this.#head;
  }

  /**
   * Visits, in order, every record published before the call, and frees their space. `record`
   * views the ring itself and is valid only during the visit: copy what must outlive it. Returns
   * the number of records visited. If `visit` throws, the records up to and including that one
   * are consumed and the exception propagates.
   */
  drain(visit: (record: Uint8Array) => void): number {
    const bytes = this.bytes;
    return this.#drain((at, length) => visit(bytes.subarray(at, at + length)));
  }

  /** drain, decoding each record as a kmsg (which owns its body). */
  drainKmsg(visit: (msg: WireKmsg) => void): number {
    const view = this.view;
    return this.#drain((at, length) => visit(decodeKmsg(view, at, length)));
  }

  #drain(visit: (at: number, length: number) => void): number {
    const capacity = this.capacity;
    const words = this.words;
    // Acquire: every record up to this tail was written before the producer's store of it. One
    // snapshot per call, so a producer faster than us cannot keep us here forever.
    const tail = Atomics.load(this.indices, TAIL);
    let head = this.#head;
    let released = head;
    let count = 0;
    try {
      while (head !== tail) {
        const at = head & (capacity - 1);
        const length = words[at >> 2]!;
        if (length === RING_WRAP) {
          head = (head + capacity - at) | 0;
          continue;
        }
        // Advance first, so a visit that throws still consumes its record.
        head = (head + RING_RECORD_HEADER_BYTES + align8(length)) | 0;
        count++;
        visit(at + RING_RECORD_HEADER_BYTES, length);
        // Hand space back a quarter ring at a time, not only at the end, so a long drain of a
        // full ring lets the producer write again before we finish.
        if (((head - released) >>> 0) >= capacity >>> 2) {
          Atomics.store(this.indices, HEAD, head);
          released = head;
        }
      }
    } finally {
      // Release: we are done reading everything before `head`; the producer may now reuse it.
      this.#head = head;
      if (released !== head) Atomics.store(this.indices, HEAD, head);
    }
    return count;
  }
}

/**
 * One doorbell SAB serves every node: a cell per node, each on its own cache line.
 *
 *   Int32 word  0          1          2 .. 15     16         17         ...
 *              +----------+----------+----------+----------+----------+----
 *              | sequence | sleeping | (pad)    | sequence | sleeping | ...
 *              +----------+----------+----------+----------+----------+----
 *               node 0's cell (64 bytes)          node 1's cell
 *
 * sequence: bumped by every producer after it publishes into one of the node's incoming rings.
 * sleeping: 1 while the node is (about to be) parked in Atomics.waitAsync on its sequence.
 */
export const DOORBELL_CELL_WORDS = 16;
const SEQUENCE = 0;
const SLEEPING = 1;

export function createDoorbell(nodes: number): SharedArrayBuffer {
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`nodes must be a positive integer, not ${nodes}`);
  return new SharedArrayBuffer(nodes * DOORBELL_CELL_WORDS * Int32Array.BYTES_PER_ELEMENT);
}

/** Doorbell polls between a look at the clock and a microtask turn while spinning (see wait). */
const SPIN_CHUNK = 64;

/** A node's handle on the shared doorbell: it rings other nodes and waits on its own cell. */
export class Doorbell {
  readonly node: number;
  readonly #cells: Int32Array;
  readonly #sequence: number;
  readonly #sleeping: number;
  /** Whether we rang another node since takeRang() last looked. */
  #rang = false;

  constructor(sab: SharedArrayBuffer, node: number) {
    if (!(sab instanceof SharedArrayBuffer)) throw new TypeError('doorbell must be a SharedArrayBuffer');
    this.#cells = new Int32Array(sab);
    const nodes = this.#cells.length / DOORBELL_CELL_WORDS;
    if (!Number.isInteger(node) || node < 0 || node >= nodes) {
      throw new RangeError(`node must be an integer from 0 to ${nodes - 1}, not ${node}`);
    }
    this.node = node;
    this.#sequence = node * DOORBELL_CELL_WORDS + SEQUENCE;
    this.#sleeping = node * DOORBELL_CELL_WORDS + SLEEPING;
  }

  /**
   * Tells `node` that one of its incoming rings has new records. Call after the write that
   * published them (once for a burst of writes is enough). A syscall only when `node` sleeps.
   */
  ring(node: number): void {
    const cell = node * DOORBELL_CELL_WORDS;
    if (node !== this.node) this.#rang = true;
    // Bump, then look: why no wake-up is lost is argued in wait().
    Atomics.add(this.#cells, cell + SEQUENCE, 1);
    // Only the consumer clears sleeping. Clearing it here (exchange, so one producer pays per
    // sleep) loses wake-ups: our load can see the 1 of a sleep that already ended, and the
    // exchange then clears the 1 of the next one with a notify that came before its waitAsync
    // and a bump it had already read. The consumer then sleeps with nobody left to wake it.
    if (Atomics.load(this.#cells, cell + SLEEPING) !== 0) Atomics.notify(this.#cells, cell + SEQUENCE);
  }

  /** Whether this handle rang another node since the last call. serve() spins only then. */
  takeRang(): boolean {
    const rang = this.#rang;
    this.#rang = false;
    return rang;
  }

  /**
   * Waits until this node's doorbell rings, unless `pending()` says work already arrived. First
   * polls the sequence for up to `spinMicros` µs, letting microtasks run every SPIN_CHUNK polls
   * (a reply is often one microtask chain away), and returns at once if it moved: no syscall on
   * either side. Then sleeps with the lost-wakeup protocol:
   *
   *   1. read the sequence s;  2. sleeping = 1;  3. pending()? then return;  4. waitAsync(sequence, s)
   *
   * A producer publishes its record, bumps the sequence (B), then reads sleeping (L); all are
   * seq-cst. If B came before step 1, the record was published before step 3, which sees it. If
   * after, the sequence is no longer s: a step 4 after B returns 'not-equal', and a step 4 that
   * registered before B is still asleep at L, which comes after step 2 and so reads 1 and
   * notifies. Only the consumer clears sleeping, once awake (see ring).
   *
   * Resolves 'spun' (the sequence moved while polling), 'pending', or waitAsync's answer ('ok',
   * 'not-equal'); only 'ok' means the event loop turned while we waited.
   */
  async wait(pending: () => boolean, spinMicros = 0): Promise<'spun' | 'pending' | 'ok' | 'not-equal' | 'timed-out'> {
    const cells = this.#cells;
    const sequence = this.#sequence;
    const seen = Atomics.load(cells, sequence);
    if (spinMicros > 0) {
      const until = performance.now() + spinMicros / 1000;
      do {
        await undefined;
        for (let i = 0; i < SPIN_CHUNK; i++) {
          if (Atomics.load(cells, sequence) !== seen) return 'spun';
        }
      } while (performance.now() < until);
    }
    Atomics.store(cells, this.#sleeping, 1);
    if (pending()) {
      Atomics.store(cells, this.#sleeping, 0);
      return 'pending';
    }
    // XXX: on Node 20 a pending waitAsync does not keep the event loop alive
    // (https://github.com/nodejs/node/issues/61941): a node stays up only while something else
    // (its parentPort listener) holds the loop. Later Node versions may ref it; serve() never
    // leaves a wait behind when stopped, so exiting works either way.
    const result = Atomics.waitAsync(cells, sequence, seen);
    const outcome = result.async ? await result.value : result.value;
    Atomics.store(cells, this.#sleeping, 0);
    return outcome;
  }
}

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
  const { signal, spin = SERVE_DEFAULT_SPIN, batch = SERVE_DEFAULT_BATCH, adaptive = true } = options;
  if (!(spin >= 0 && spin < Infinity)) throw new RangeError(`options.spin must be a non-negative number of µs, not ${spin}`);
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`options.batch must be a positive integer, not ${batch}`);
  const incoming: { reader: RingReader; visit: (record: Uint8Array) => void }[] = [];
  readers.forEach((reader, from) => {
    if (reader !== null) incoming.push({ reader, visit: (record) => onRecord(record, from) });
  });
  const pending = (): boolean => incoming.some(({ reader }) => !reader.empty);
  const stop = (): void => doorbell.ring(doorbell.node);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    let sinceTurn = 0;
    let budget = spin;
    let backoff = 0;
    let skip = 0;
    while (signal?.aborted !== true) {
      let drained = 0;
      for (const { reader, visit } of incoming) drained += reader.drain(visit);
      if (drained > 0) {
        sinceTurn += drained;
        if (sinceTurn >= batch) {
          sinceTurn = 0;
          await new Promise<void>((resolve) => setImmediate(resolve));
        } else {
          // Let what the records set off run to its end before we look again or decide to spin:
          // a resolved receive reaches the task's reply through a chain of microtasks, and a
          // reply rung after we looked would find us asleep instead of spinning for its answer.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        continue;
      }
      // Spin only when we sent something since the last wait: then an answer is likely on its
      // way. A node that only receives sleeps at once and drains in batches, which streams faster.
      const rang = doorbell.takeRang();
      const micros = rang ? budget : 0;
      const outcome = await doorbell.wait(pending, micros);
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
