/**
 * The host's side of the invariants: every check a run makes is counted under its invariant,
 * and every violation kept with what it saw. NORMA_STRESS_BREAK=<invariant> (tests only) makes
 * the first check of that invariant fail (a host count one too many, or a thread's checks), so
 * a test can prove a violation ends the run non-zero with the line that replays it.
 */
import { UsageError } from '../args.js';
import { INVARIANTS, type Invariant, type Violation } from './thread-kit.js';

export const BREAK_ENV = 'NORMA_STRESS_BREAK';

/** The invariant NORMA_STRESS_BREAK names, undefined when unset; throws for a name that is none. */
export function brokenInvariant(env: NodeJS.ProcessEnv = process.env): Invariant | undefined {
  const value = env[BREAK_ENV];
  if (value === undefined || value === '') return undefined;
  if (!(value in INVARIANTS)) throw new UsageError(`${BREAK_ENV} must name an invariant: ${Object.keys(INVARIANTS).join(', ')}`);
  return value as Invariant;
}

export class Checker {
  readonly checks = new Map<Invariant, number>();
  readonly violations: Violation[] = [];
  #broken: Invariant | undefined;

  constructor(broken: Invariant | undefined) { this.#broken = broken; }

  /** One check of `invariant`: `actual` must be `expected`; `what` says what was counted. */
  equal(invariant: Invariant, actual: number, expected: number, what: string): boolean {
    if (this.#broken === invariant) {
      this.#broken = undefined;
      actual += 1;
      what += ` (broken on purpose by ${BREAK_ENV})`;
    }
    return this.that(invariant, actual === expected, () => `${what}: ${actual}, expected ${expected}`);
  }

  /** One check of `invariant`; `detail` explains a failure. */
  that(invariant: Invariant, ok: boolean, detail: () => string): boolean {
    this.checks.set(invariant, (this.checks.get(invariant) ?? 0) + 1);
    if (!ok) this.violations.push({ invariant, detail: detail() });
    return ok;
  }

  /** What threads checked while running: `count` checks, and the violations they saw. */
  fromThreads(invariants: readonly Invariant[], count: number, violations: readonly Violation[]): void {
    for (const invariant of invariants) this.checks.set(invariant, (this.checks.get(invariant) ?? 0) + count);
    this.violations.push(...violations);
    if (this.#broken !== undefined && invariants.includes(this.#broken)) {
      this.violations.push({ invariant: this.#broken, detail: `a thread's checks (broken on purpose by ${BREAK_ENV})` });
      this.#broken = undefined;
    }
  }

  get ok(): boolean { return this.violations.length === 0; }
}
