/**
 * What the threads of every scenario share: the control page's layout, the invariants by name,
 * a recorder of call latencies (HDR histograms, merged on the host), and the request / reply
 * bodies of the RPC scenarios. Loaded by the nodes: it imports nothing from the host.
 */
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import type { Prng } from './prng.js';

/**
 * The control page, shared by every task of a run (inherited or cloned from the run's root):
 * Int32 words the host and the threads read and write with Atomics.
 */
export const CTL = {
  /** Non-zero: stop (the duration ran out, or an invariant was violated). */
  STOP: 0,
  /** Operations done so far, over all threads (the progress display reads it). */
  OPS: 1,
  /** Violations seen by threads so far: the host stops the run at the first. */
  VIOLATIONS: 2,
  /** chaos: the node crashed, plus one (0 while none is). */
  DOWN: 3,
} as const;
export const CONTROL_BYTES = 64;

/** What the runs check, by the names a violation prints. */
export const INVARIANTS = {
  'counters-exact': 'every counter adds up exactly (operations, Atomics totals, ledgers, creations and terminations)',
  'no-loss': 'every message sent was received: per sender and port, sent = received',
  'no-duplicate': 'no message was received twice',
  'per-sender-order': "each sender's messages arrive in the order sent",
  'expected-returns': 'every call answered a code the scenario expects (KERN_RESOURCE_SHORTAGE counted, never a crash)',
  'node-down-answers': 'every call in flight to the crashed node failed with KERN_NODE_DOWN, and nothing else was lost',
  'teardown-clean': 'after teardown each node holds what it held before: no task, thread, port, region or memory object left',
} as const;
export type Invariant = keyof typeof INVARIANTS;

export interface Violation { readonly invariant: Invariant; readonly detail: string }

/** What a thread returns: its latencies per call, its counts, what it saw go wrong, its draws. */
export interface ThreadReport {
  readonly histograms: Readonly<Record<string, string>>;
  readonly counts: Readonly<Record<string, number>>;
  readonly violations: readonly Violation[];
  /** How many checks the thread made as it ran (each message's sequence number, each call's answer, ...). */
  readonly checks: number;
  readonly digest: number;
  readonly draws: number;
}

/** Latencies are recorded in nanoseconds, up to an hour, to 2 significant digits. */
export function newHistogram(): Histogram {
  return build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: 2 });
}

/** A thread's bookkeeping: latencies by call, counts by outcome, violations, and the stop word. */
export class Recorder {
  readonly ctl: Int32Array;
  readonly #histograms = new Map<string, Histogram>();
  readonly #counts = new Map<string, number>();
  readonly #violations: Violation[] = [];
  #checks = 0;

  constructor(ctl: Int32Array) { this.ctl = ctl; }

  /** True while iteration `i` should run: below `iterations` (0: no limit) and no stop asked. */
  running(i: number, iterations: number): boolean {
    return (iterations === 0 || i < iterations) && Atomics.load(this.ctl, CTL.STOP) === 0;
  }

  /** Records how long `call` took since `started` (performance.now()). */
  took(call: string, started: number): void {
    let histogram = this.#histograms.get(call);
    if (histogram === undefined) this.#histograms.set(call, histogram = newHistogram());
    histogram.recordValue(Math.max(1, Math.round((performance.now() - started) * 1e6)));
  }

  /** Counts `n` operations toward the progress display. */
  op(n = 1): void { Atomics.add(this.ctl, CTL.OPS, n); }

  /** Counts `n` checks made (and passed or reported). */
  checked(n = 1): void { this.#checks += n; }

  count(key: string, n = 1): void { this.#counts.set(key, (this.#counts.get(key) ?? 0) + n); }

  violation(invariant: Invariant, detail: string): void {
    if (this.#violations.length < 20) this.#violations.push({ invariant, detail });
    Atomics.add(this.ctl, CTL.VIOLATIONS, 1);
  }

  report(prng: Prng): ThreadReport {
    const histograms: Record<string, string> = {};
    for (const [call, histogram] of this.#histograms) {
      histograms[call] = encodeIntoCompressedBase64(histogram);
      histogram.destroy();
    }
    return { histograms, counts: Object.fromEntries(this.#counts), violations: this.#violations, checks: this.#checks, digest: prng.digest, draws: prng.draws };
  }
}

/** msgh_ids of the RPC scenarios. */
export const REQUEST_ID = 700;
export const REPLY_ID = 800;
export const STOP_ID = 799;

/** A request or reply body: sender index, its sequence number for this port, and a check word. */
export function body(sender: number, seq: number): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, sender, true);
  view.setUint32(4, seq, true);
  view.setUint32(8, check(sender, seq), true);
  return bytes;
}

/** The sender and sequence number of a body, or undefined when it is not one `body` made. */
export function readBody(bytes: Uint8Array): { sender: number; seq: number } | undefined {
  if (bytes.byteLength !== 12) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 12);
  const sender = view.getUint32(0, true), seq = view.getUint32(4, true);
  return view.getUint32(8, true) === check(sender, seq) ? { sender, seq } : undefined;
}

function check(sender: number, seq: number): number {
  return (Math.imul(sender + 1, 0x9e3779b1) ^ Math.imul(seq + 7, 0x85ebca6b)) >>> 0;
}

/** The name a port's send right gets in the tasks the host gives it to: one per port index. */
export function serviceName(index: number): number { return ((0x40 + index) << 8) | 3; }
