/**
 * A table of records by memory-object key, for the per-object bookkeeping of vm maps and the
 * object cache. A V8 Map whose hash table outgrows the regular heap (a few thousand entries)
 * moves it to large-object space, and from there every insertion costs about ten times as much
 * (300-450 ns instead of 25-45 ns, measured at 10,000 keys): filling the map of a forked
 * 10,000-region task cost 3-6 ms in that alone. So a large table spreads its keys over small
 * Maps by their low bits (object keys are home * REF_TABLE_SLOTS + slot, and slots are dense).
 */
const SHARDS = 64;
const SHARD_MASK = SHARDS - 1;
/** Below this many keys one Map serves (most maps hold few objects); above it, the shards. */
const SPLIT_AT = 2048;

export class KeyedTable<V> {
  #one: Map<number, V> | undefined = new Map();
  #shards: Map<number, V>[] | undefined;
  #size = 0;

  get size(): number { return this.#size; }

  get(key: number): V | undefined {
    return this.#one !== undefined ? this.#one.get(key) : this.#shards![key & SHARD_MASK]!.get(key);
  }

  /** Adds or replaces the record for `key`. */
  set(key: number, value: V): void {
    let table = this.#one;
    if (table === undefined) table = this.#shards![key & SHARD_MASK]!;
    else if (table.size >= SPLIT_AT) table = this.#split()[key & SHARD_MASK]!;
    const before = table.size;
    table.set(key, value);
    this.#size += table.size - before;
  }

  delete(key: number): boolean {
    const table = this.#one ?? this.#shards![key & SHARD_MASK]!;
    const deleted = table.delete(key);
    if (deleted) this.#size--;
    return deleted;
  }

  /** Every record, in no particular order. */
  values(): V[] {
    if (this.#one !== undefined) return [...this.#one.values()];
    const values = new Array<V>(this.#size);
    let at = 0;
    for (const shard of this.#shards!) for (const value of shard.values()) values[at++] = value;
    return values;
  }

  clear(): void {
    this.#one = new Map();
    this.#shards = undefined;
    this.#size = 0;
  }

  #split(): Map<number, V>[] {
    const shards = Array.from({ length: SHARDS }, () => new Map<number, V>());
    for (const [key, value] of this.#one!) shards[key & SHARD_MASK]!.set(key, value);
    this.#one = undefined;
    return this.#shards = shards;
  }
}
