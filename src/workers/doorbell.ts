/**
 * The doorbell of the message fast path (channel.ts): one word per node that all of its incoming
 * rings share. A producer rings after it publishes; a consumer sleeps with Atomics.waitAsync,
 * never Atomics.wait, so a node's event loop keeps running.
 */

/**
 * One doorbell SAB serves every node: a cell per node, each on its own cache line.
 *
 *   Int32 word  0          1          2          3          4 .. 15    16         ...
 *              +----------+----------+----------+----------+----------+----------+----
 *              | sequence | sleeping | places   | notified | (pad)    | sequence | ...
 *              +----------+----------+----------+----------+----------+----------+----
 *               node 0's cell (64 bytes)                                node 1's cell
 *
 * sequence: bumped by every producer after it publishes into one of the node's incoming rings.
 * sleeping: while the node is (about to be) parked in Atomics.waitAsync on its sequence, the id of
 *           that sleep (a count, never 0); 0 while it is awake.
 * places:   1 when a queue place may be free for a sender blocked on the node (port-table.ts).
 * notified: the id of the last sleep a producer notified: a burst of records to a sleeping node
 *           costs one futex wake, not one per record.
 */
export const DOORBELL_CELL_WORDS = 16;
const SEQUENCE = 0;
const SLEEPING = 1;
const PLACES = 2;
const NOTIFIED = 3;

export function createDoorbell(nodes: number): SharedArrayBuffer {
  if (!Number.isInteger(nodes) || nodes < 1) throw new RangeError(`nodes must be a positive integer, not ${nodes}`);
  return new SharedArrayBuffer(nodes * DOORBELL_CELL_WORDS * Int32Array.BYTES_PER_ELEMENT);
}

/** Doorbell polls between two looks at the clock while spinning (see wait). */
const SPIN_CHUNK = 32;

/** A node's handle on the shared doorbell: it rings other nodes and waits on its own cell. */
export class Doorbell {
  readonly node: number;
  readonly #cells: Int32Array;
  readonly #sequence: number;
  readonly #sleeping: number;
  readonly #places: number;
  /** The id of this node's last sleep. */
  #sleeps = 0;
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
    this.#places = node * DOORBELL_CELL_WORDS + PLACES;
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
    // One notify per sleep: a producer that finds this sleep's id in `notified` skips the
    // syscall, since another notified it after reading the same id. That one's notify can
    // only miss the sleep if the node never parks in it (see wait: a bump after step 1 makes
    // step 4 'not-equal', one before it is seen by step 3), and then nothing needs waking. A
    // stale id (a sleep that ended) only costs a spurious notify.
    const sleep = Atomics.load(this.#cells, cell + SLEEPING);
    if (sleep !== 0 && Atomics.exchange(this.#cells, cell + NOTIFIED, sleep) !== sleep) {
      Atomics.notify(this.#cells, cell + SEQUENCE);
    }
  }

  /**
   * Tells `node` that a queue place may be free for a sender blocked there: the flag, then the
   * ring that publishes it (the node's serve loop takes the flag before it looks at its rings).
   */
  wakeSenders(node: number): void {
    Atomics.store(this.#cells, node * DOORBELL_CELL_WORDS + PLACES, 1);
    this.ring(node);
  }

  /**
   * This node's doorbell sequence now. Read before draining the rings and passed to wait(), it
   * makes a record published during the drain end the wait's spin at once.
   */
  get sequence(): number { return Atomics.load(this.#cells, this.#sequence); }

  /** Whether a node asked this one to look at its blocked senders (not yet taken). */
  get placesAsked(): boolean { return Atomics.load(this.#cells, this.#places) !== 0; }

  /** Whether some node asked this one to look at its blocked senders since the last call. */
  takePlaces(): boolean {
    return Atomics.load(this.#cells, this.#places) !== 0 && Atomics.exchange(this.#cells, this.#places, 0) !== 0;
  }

  /** Whether this handle rang another node since the last call. serve() spins only then. */
  takeRang(): boolean {
    const rang = this.#rang;
    this.#rang = false;
    return rang;
  }

  /**
   * Waits until this node's doorbell rings, unless `pending()` says work already arrived. First
   * polls the sequence for up to `spinMicros` µs, letting microtasks run between polls (a reply
   * is often one microtask chain away), and returns at once if it moved: no syscall on either
   * side. Then sleeps with the lost-wakeup protocol:
   *
   *   1. read the sequence s;  2. sleeping = id;  3. pending()? then return;  4. waitAsync(sequence, s)
   *
   * A producer publishes its record, bumps the sequence (B), then reads sleeping (L); all are
   * seq-cst. If B came before step 1, the record was published before step 3, which sees it. If
   * after, the sequence is no longer s: a step 4 after B returns 'not-equal', and a step 4 that
   * registered before B is still asleep at L, which comes after step 2 and so reads the id and
   * notifies (or sees that a producer after step 2 did). Only the consumer clears sleeping, once awake (see ring).
   *
   * Resolves 'spun' (the sequence moved while polling), 'pending', or waitAsync's answer ('ok',
   * 'not-equal'); only 'ok' means the event loop turned while we waited.
   */
  async wait(pending: () => boolean, spinMicros = 0, seen = this.sequence): Promise<'spun' | 'pending' | 'ok' | 'not-equal' | 'timed-out'> {
    const cells = this.#cells;
    const sequence = this.#sequence;
    if (spinMicros > 0) {
      const until = performance.now() + spinMicros / 1000;
      // A microtask turn before every poll: what a record we just delivered set off (a receive
      // resolving, the task's next send) is a chain of microtasks, each link one turn, and its
      // answer can only come once the chain has run.
      do {
        for (let i = 0; i < SPIN_CHUNK; i++) {
          await undefined;
          if (Atomics.load(cells, sequence) !== seen) return 'spun';
        }
      } while (performance.now() < until);
    }
    this.#sleeps = this.#sleeps % 0x7fffffff + 1;
    Atomics.store(cells, this.#sleeping, this.#sleeps);
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
