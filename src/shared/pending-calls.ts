/**
 * Calls in flight, by id: every call settles once, by its answer or by the death of a node it
 * depends on. The host's table of calls on its nodes (workers/node-host.ts) and each node's
 * table of calls on its peers (workers/links.ts) are this one structure.
 */
export class PendingCalls<Call> {
  readonly #pending = new Map<number, Call>();
  #nextId = 1;

  add(call: Call): number {
    const id = this.#nextId++;
    this.#pending.set(id, call);
    return id;
  }

  /** Takes call `id` out of the table; undefined when it settled already. */
  settle(id: number): Call | undefined {
    const call = this.#pending.get(id);
    if (call !== undefined) this.#pending.delete(id);
    return call;
  }

  /** Settles, in post order, every call `dependsOn` picks (the calls a dead node takes with it). */
  settleWhere(dependsOn: (call: Call) => boolean): Call[] {
    const settled: Call[] = [];
    for (const [id, call] of this.#pending) if (dependsOn(call)) settled.push(this.settle(id)!);
    return settled;
  }

  /** The oldest call still waiting that `matches` (ids, and so the map, are in post order). */
  oldest(matches: (call: Call) => boolean): Call | undefined {
    for (const call of this.#pending.values()) if (matches(call)) return call;
    return undefined;
  }
}
