/**
 * A node's memory objects: the one MemoryObject per object it uses, which buffers it holds (the
 * shared resident bits), what its maps and messages hold (MapHoldings, for the survivors should
 * it die), and the one path by which objects whose last reference goes reach their home pager.
 */
import { type NodeRelease } from '../../shared/protocol.js';
import type { MemoryObjectName, MemoryObjectRef, NodeId } from '../../shared/types.js';
import { DefaultPager } from './default-pager.js';
import { KeyedTable } from './keyed-table.js';
import { MapHoldings, MemoryObject, ObjectReferences, REF_TABLE_SLOTS } from './memory-object.js';
import type { VmMapHooks } from './vm-map.js';

/** An object as an image or message names it: its buffer may be absent (held by the receiver). */
type ObjectRef = Omit<MemoryObjectRef, 'sab'> & { readonly sab: SharedArrayBuffer | null };

export class ObjectCache {
  readonly node: NodeId;
  readonly references: ObjectReferences;
  readonly pager: DefaultPager;
  readonly #post: (home: NodeId, message: NodeRelease) => void;
  /** Every node's MapHoldings (this node's is written here; a dead node's is read to release it). */
  readonly #holdingTables: readonly SharedArrayBuffer[];
  readonly #holdings: MapHoldings;
  /** Every node's record of the references its messages' regions hold (this node's written here). */
  readonly #messageTables: readonly SharedArrayBuffer[];
  readonly #messageHoldings: MapHoldings;
  /** This node's entries in it: references held by messages here, by object key. */
  readonly #inMessages = new KeyedTable<{ count: number; readonly holding: number | undefined }>();
  /**
   * The objects some task on this node maps, by object key: what an image for this node may
   * leave out. The shared table's resident bit for this node is set while an entry lives, and
   * cleared before the last map's reference goes, so a slot reused for another object never
   * shows this node resident.
   */
  readonly #held = new KeyedTable<{ readonly object: MemoryObject; maps: number; readonly holding: number | undefined }>();

  /**
   * Without holding tables (single-node tests) this node's holdings are recorded where no one
   * reads them. `post` carries objects to their home pagers on other nodes.
   */
  constructor(node: NodeId, refTables: readonly SharedArrayBuffer[], holdingTables: readonly SharedArrayBuffer[],
    messageTables: readonly SharedArrayBuffer[], post: (home: NodeId, message: NodeRelease) => void) {
    this.node = node;
    this.references = new ObjectReferences(refTables);
    this.pager = new DefaultPager(node, this.references);
    this.#post = post;
    this.#holdingTables = holdingTables;
    this.#holdings = new MapHoldings(holdingTables[node] ?? MapHoldings.create());
    this.#messageTables = messageTables;
    this.#messageHoldings = new MapHoldings(messageTables[node] ?? MapHoldings.create());
  }

  /** What every vm map on this node tells the cache (VmMapHooks). */
  readonly hooks: VmMapHooks = {
    mapped: (object) => {
      this.references.countMaps(object, 1);
      const held = this.#held.get(object.key);
      if (held !== undefined && held.object.generation === object.generation) {
        held.maps++;
        if (held.holding !== undefined) this.#holdings.set(held.holding, held.maps);
        return;
      }
      if (held?.holding !== undefined) this.#holdings.remove(held.holding);
      this.#held.set(object.key, { object, maps: 1, holding: this.#holdings.add(object.key) });
      if (object.home !== this.node) this.references.setResident(object, this.node, true);
    },
    // The holding shrinks before the caller drops the reference: a node dying in between
    // leaks one reference rather than having it released twice.
    unmapped: (object) => {
      this.references.countMaps(object, -1);
      const held = this.#held.get(object.key);
      if (held === undefined) return;
      if (--held.maps > 0) {
        if (held.holding !== undefined) this.#holdings.set(held.holding, held.maps);
        return;
      }
      this.#held.delete(object.key);
      if (held.holding !== undefined) this.#holdings.remove(held.holding);
      if (object.home !== this.node) this.references.setResident(object, this.node, false);
    },
  };

  /**
   * This node's MemoryObject for `ref`: the one its maps hold, or (homed here) the pager's own,
   * or a new one on the buffer `ref` carries; undefined when `ref` carries none and this node
   * holds none (the caller fetches it from the home pager).
   */
  object(ref: ObjectRef): MemoryObject | undefined {
    return this.objectAt(ref.home, ref.slot, ref.generation, ref.sab);
  }

  /** As `object`, from the fields of a name (an image's flat words: no ref to build). */
  objectAt(home: NodeId, slot: number, generation: number, sab: SharedArrayBuffer | null): MemoryObject | undefined {
    const held = this.#held.get(home * REF_TABLE_SLOTS + slot)?.object;
    if (held !== undefined && held.generation === generation) return held;
    const own = home === this.node ? this.pager.object(slot, generation) : undefined;
    if (own !== undefined) return own;
    return sab === null ? undefined : new MemoryObject({ home, slot, generation, sab });
  }

  /** True when `node` has said it holds the object's buffer (then an image for it only names it). */
  isResident(object: MemoryObjectName, node: NodeId): boolean { return this.references.isResident(object, node); }

  /** True while more than one vm map maps the object (images and messages hold references too). */
  shared(object: MemoryObjectName): boolean { return this.references.maps(object) > 1; }

  /**
   * A message here holds one more (`delta` 1) or one fewer reference on `object`, recorded for
   * the survivors should this node die. Raised after the reference is taken and lowered before
   * it is dropped or handed on, so a death in between leaks one rather than releasing it twice.
   */
  holdInMessage(object: MemoryObjectName, delta: 1 | -1): void {
    const key = object.home * REF_TABLE_SLOTS + object.slot;
    const held = this.#inMessages.get(key);
    if (held === undefined) {
      if (delta === 1) this.#inMessages.set(key, { count: 1, holding: this.#messageHoldings.add(key) });
      return;
    }
    held.count += delta;
    if (held.count > 0) {
      if (held.holding !== undefined) this.#messageHoldings.set(held.holding, held.count);
      return;
    }
    this.#inMessages.delete(key);
    if (held.holding !== undefined) this.#messageHoldings.remove(held.holding);
  }

  /**
   * Drops one reference per object and hands those that reached zero to their home pagers
   * (see handOn).
   */
  release(objects: Iterable<MemoryObjectName>, reply?: MemoryObjectName[]): void {
    const gone: MemoryObjectName[] = [];
    for (const object of objects) if (this.references.release(object)) gone.push(object);
    if (gone.length > 0) this.handOn(gone, reply);
  }

  /**
   * The one way objects whose last reference is gone (here or on another node) reach their home
   * pager: those homed here are freed now; the others go into `reply`, when given, for the host
   * to hand on before the call it answers completes (so a pagerInfo after it sees them gone),
   * else straight to their homes, one message per home.
   */
  handOn(objects: readonly MemoryObjectName[], reply?: MemoryObjectName[]): void {
    const byHome = new Map<NodeId, MemoryObjectName[]>();
    for (const object of objects) {
      if (object.home === this.node) {
        this.pager.terminate(object.slot);
        continue;
      }
      const name = { home: object.home, slot: object.slot };
      if (reply !== undefined) {
        reply.push(name);
        continue;
      }
      let names = byHome.get(object.home);
      if (names === undefined) byHome.set(object.home, names = []);
      names.push(name);
    }
    for (const [home, names] of byHome) this.#post(home, { op: 'release', objects: names });
  }

  /**
   * Node `node` died: the references its maps and its messages' regions held on objects homed
   * here are dropped, and objects no one holds any more are freed. Not recovered: those beyond
   * its MapHoldings capacity (see MapHoldings).
   */
  forgetNode(node: NodeId): void {
    const held = new Map<number, { maps: number; messages: number }>();
    const holdings = this.#holdingTables[node];
    const messages = this.#messageTables[node];
    for (const { key, maps } of holdings === undefined ? [] : MapHoldings.entries(holdings)) held.set(key, { maps, messages: 0 });
    for (const { key, maps: count } of messages === undefined ? [] : MapHoldings.entries(messages)) {
      const entry = held.get(key);
      if (entry === undefined) held.set(key, { maps: 0, messages: count });
      else entry.messages = count;
    }
    for (const [key, { maps, messages: count }] of held) {
      const object = { home: Math.floor(key / REF_TABLE_SLOTS) as NodeId, slot: key % REF_TABLE_SLOTS };
      if (object.home === this.node && this.references.forgetNode(object, node, maps, count)) this.pager.terminate(object.slot);
    }
  }
}
