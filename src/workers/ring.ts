/**
 * The ring of the message fast path (channel.ts): a single-producer single-consumer ring of
 * variable-length records in a SharedArrayBuffer, one for each ordered pair of nodes. Nothing
 * here blocks: a full ring answers false, and the caller sends some other way.
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
