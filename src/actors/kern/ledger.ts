/**
 * Ledgers: shared limits on the memory tasks may create (Mach `ledger_t`; task_create.html
 * documents them as unimplemented, norma enforces them). A ledger's words live in a
 * SharedArrayBuffer so tasks on every node charge the same balance with Atomics, lock-free.
 */
import { TASK_LEDGER_COUNT } from '../../shared/constants.js';
import type { LedgerRef, TaskLedgers } from '../../shared/protocol.js';

/**
 * Layout of a ledger's `sab` (LedgerRef; BigInt64 words, updated with Atomics):
 *   | 0: limit in bytes | 1: bytes charged |
 */
export const LEDGER_LIMIT = 0;
export const LEDGER_BALANCE = 1;
export const LEDGER_WORDS = 2;

const UNLIMITED = (1n << 63n) - 1n;

export class Ledger {
  readonly ref: LedgerRef;
  readonly #words: BigInt64Array;

  constructor(ref: LedgerRef) {
    this.ref = ref;
    this.#words = new BigInt64Array(ref.sab, 0, LEDGER_WORDS);
  }

  /** A new ledger; `limit` in bytes, or Infinity for none. */
  static create(id: number, limit: number): Ledger {
    const sab = new SharedArrayBuffer(LEDGER_WORDS * BigInt64Array.BYTES_PER_ELEMENT);
    const words = new BigInt64Array(sab);
    words[LEDGER_LIMIT] = limit === Infinity ? UNLIMITED : BigInt(limit);
    return new Ledger({ id, sab });
  }

  get id(): number { return this.ref.id; }

  /** The limit in bytes (Infinity when unlimited). */
  get limit(): number {
    const limit = Atomics.load(this.#words, LEDGER_LIMIT);
    return limit === UNLIMITED ? Infinity : Number(limit);
  }

  /** Bytes currently charged by every task drawing on this ledger. */
  get balance(): number { return Number(Atomics.load(this.#words, LEDGER_BALANCE)); }

  /**
   * Charges `bytes` if the balance stays within the limit. A compare-exchange loop, so two
   * nodes charging at once can never together pass the limit.
   */
  charge(bytes: number): boolean {
    const amount = BigInt(bytes);
    const limit = Atomics.load(this.#words, LEDGER_LIMIT);
    for (;;) {
      const balance = Atomics.load(this.#words, LEDGER_BALANCE);
      if (balance + amount > limit) return false;
      if (Atomics.compareExchange(this.#words, LEDGER_BALANCE, balance, balance + amount) === balance) {
        return true;
      }
    }
  }

  credit(bytes: number): void {
    Atomics.sub(this.#words, LEDGER_BALANCE, BigInt(bytes));
  }
}

export function isLedgerRef(value: unknown): value is LedgerRef {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<LedgerRef>;
  return typeof candidate.id === 'number' && candidate.sab instanceof SharedArrayBuffer &&
    candidate.sab.byteLength >= LEDGER_WORDS * BigInt64Array.BYTES_PER_ELEMENT;
}

/**
 * task_create's ledger rule: the child draws on the given [wired, paged] ledgers only when
 * exactly TASK_LEDGER_COUNT non-null ledgers are supplied; otherwise on its parent's.
 * Something that is not a ledger at all is an invalid argument.
 */
export function chooseLedgers(ledgers: unknown, count: unknown): TaskLedgers | null | 'invalid' {
  if (ledgers === null || ledgers === undefined) return null;
  if (!Array.isArray(ledgers)) return 'invalid';
  if (ledgers.some((ledger) => ledger !== null && !(ledger instanceof Ledger) && !isLedgerRef(ledger))) return 'invalid';
  if (count !== TASK_LEDGER_COUNT || ledgers.length !== TASK_LEDGER_COUNT || ledgers.some((ledger) => ledger === null)) {
    return null;
  }
  return ledgers.map((ledger: Ledger | LedgerRef) => ledger instanceof Ledger ? ledger.ref : ledger) as unknown as TaskLedgers;
}
