/**
 * A small seeded PRNG for the stress runs: mulberry32 over a 32-bit state, with a running
 * FNV-1a digest of every value drawn. A thread's draws are its operation sequence (which call,
 * which node, how many pages), so equal digests for equal seeds show a run replays the same
 * sequence. Loaded by the nodes too: it imports nothing.
 */
export class Prng {
  #state: number;
  #digest = 0x811c9dc5;
  #draws = 0;

  constructor(seed: number) { this.#state = seed >>> 0; }

  /** The generator of one party of a run (a thread, the host's driver): `seed` mixed with its path. */
  static derive(seed: number, ...path: number[]): Prng {
    let h = mix(seed >>> 0);
    for (const step of path) h = mix((h ^ Math.imul(step + 1, 0x9e3779b9)) >>> 0);
    return new Prng(h);
  }

  /** The next 32-bit value (recorded in the digest). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const value = (t ^ (t >>> 14)) >>> 0;
    this.#digest = Math.imul(this.#digest ^ value, 0x01000193) >>> 0;
    this.#draws++;
    return value;
  }

  /** An integer in [0, n). */
  below(n: number): number { return this.next() % n; }

  /** An integer in [low, high]. */
  between(low: number, high: number): number { return low + this.below(high - low + 1); }

  /** Digest of every value drawn so far, and how many. */
  get digest(): number { return this.#digest; }
  get draws(): number { return this.#draws; }
}

/** Folds digests in order into one (the run's sequence digest). */
export function combineDigests(digests: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const digest of digests) h = Math.imul(h ^ digest, 0x01000193) >>> 0;
  return h;
}

function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}
