/**
 * Where each global node runs: process 0 (the one that booted the kernel) hosts nodes
 * 0 .. shares[0] - 1, process 1 the next shares[1], and so on. Inside a process its nodes are
 * numbered from 0 (its local kernel's indexes); this is the one place the two meet.
 */
import type { ProcessIndex } from './link.js';

export class NodeLayout {
  /** How many nodes each process hosts. */
  readonly shares: readonly number[];
  readonly #bases: readonly number[];

  constructor(shares: readonly number[]) {
    if (shares.length === 0 || shares.some((share) => !Number.isInteger(share) || share < 1)) {
      throw new RangeError('every process of a cluster hosts at least one node');
    }
    this.shares = shares;
    let base = 0;
    this.#bases = shares.map((share) => (base += share) - share);
  }

  /** `nodes` spread as evenly as they go over `processes`, the first ones taking the remainder. */
  static even(nodes: number, processes: number): NodeLayout {
    if (nodes < processes) throw new RangeError(`${nodes} node(s) cannot be spread over ${processes} processes: each hosts at least one`);
    return new NodeLayout(Array.from({ length: processes }, (_, index) =>
      Math.floor(nodes / processes) + (index < nodes % processes ? 1 : 0)));
  }

  get nodes(): number { return this.#bases.at(-1)! + this.shares.at(-1)!; }
  get processes(): number { return this.shares.length; }

  /** The process that hosts global node `node` (an integer in [0, nodes)). */
  processOf(node: number): ProcessIndex {
    let proc = this.shares.length - 1;
    while (this.#bases[proc]! > node) proc--;
    return proc;
  }

  /** Global node `node`'s index in its own process. */
  localOf(node: number): number { return node - this.#bases[this.processOf(node)]!; }

  /** The global index of `proc`'s local node `local`. */
  globalOf(proc: ProcessIndex, local: number): number { return this.#bases[proc]! + local; }
}
