/**
 * What a scenario's run adds up to: latencies per call (the threads' HDR histograms merged with
 * the host's own), counts per outcome, and the digest of every party's draws.
 */
import { decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { combineDigests } from './prng.js';
import type { Checker } from './invariants.js';
import { newHistogram, type Invariant, type ThreadReport } from './thread-kit.js';

/** One call's row of the end table: latencies in microseconds. */
export interface CallReport {
  readonly call: string;
  readonly count: number;
  readonly opsPerSec: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
}

export class Results {
  readonly #histograms = new Map<string, Histogram>();
  readonly #counts = new Map<string, number>();
  readonly #digests = new Map<string, { digest: number; draws: number }>();

  /**
   * Takes in a thread's report under `label` (its digest's place in the sequence): its
   * latencies, counts and violations; its checks count as checks of each of `invariants`.
   */
  merge(label: string, report: ThreadReport, check: Checker, invariants: readonly Invariant[] = []): void {
    for (const [call, encoded] of Object.entries(report.histograms)) {
      const histogram = decodeFromCompressedBase64(encoded);
      this.#histogram(call).add(histogram);
      histogram.destroy();
    }
    for (const [key, n] of Object.entries(report.counts)) this.count(key, n);
    // Only parties that draw make the sequence: how often a server was restarted is timing.
    if (report.draws > 0) this.#digests.set(label, { digest: report.digest, draws: report.draws });
    check.fromThreads(invariants, report.checks, report.violations);
  }

  /** A call the host timed itself, since `started` (performance.now()). */
  took(call: string, started: number): void {
    this.#histogram(call).recordValue(Math.max(1, Math.round((performance.now() - started) * 1e6)));
  }

  /** Leaves a party out of the sequence (one on a crashed node: how far it got is timing). */
  dropDigest(label: string): void { this.#digests.delete(label); }

  count(key: string, n = 1): void { this.#counts.set(key, (this.#counts.get(key) ?? 0) + n); }

  get counts(): Record<string, number> { return Object.fromEntries([...this.#counts].sort(([a], [b]) => a.localeCompare(b))); }

  /** The operation sequence's digest: every party's draws, in label order, as hex; and how many draws. */
  get sequence(): { digest: string; draws: number } {
    const parties = [...this.#digests].sort(([a], [b]) => a.localeCompare(b)).map(([, party]) => party);
    return {
      digest: combineDigests(parties.map((party) => party.digest)).toString(16).padStart(8, '0'),
      draws: parties.reduce((sum, party) => sum + party.draws, 0),
    };
  }

  calls(elapsedMs: number): CallReport[] {
    const us = (ns: number) => Math.round(ns / 100) / 10;
    return [...this.#histograms].map(([call, h]) => ({
      call, count: h.totalCount, opsPerSec: Math.round(h.totalCount / Math.max(elapsedMs, 1) * 1000),
      p50Us: us(h.getValueAtPercentile(50)), p90Us: us(h.getValueAtPercentile(90)),
      p99Us: us(h.getValueAtPercentile(99)), maxUs: us(h.maxValue),
    }));
  }

  #histogram(call: string): Histogram {
    let histogram = this.#histograms.get(call);
    if (histogram === undefined) this.#histograms.set(call, histogram = newHistogram());
    return histogram;
  }
}
