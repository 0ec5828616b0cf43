/**
 * The default pager of one node (Mach's default_pager): allocates memory objects as
 * SharedArrayBuffers, owns them until their last mapping anywhere is gone, and accounts for them.
 */
import { KERN_RESOURCE_SHORTAGE, KERN_SUCCESS } from '../../shared/constants.js';
import { type PagerInfo } from '../../shared/protocol.js';
import type { NodeId } from '../../shared/types.js';
import type { Ledger } from '../kern/ledger.js';
import { MemoryObject, type ObjectReferences, REF_TABLE_SLOTS } from './memory-object.js';
import type { Pager } from './pager.js';
import { globalNode } from '../kern/node-base.js';

interface Resident {
  readonly object: MemoryObject;
  readonly ledger: Ledger;
}

export class DefaultPager implements Pager {
  readonly #node: NodeId;
  readonly #references: ObjectReferences;
  readonly #resident = new Map<number, Resident>();
  readonly #freeSlots: number[] = [];
  #nextSlot = 0;
  #bytes = 0;

  constructor(node: NodeId, references: ObjectReferences) {
    this.#node = node;
    this.#references = references;
  }

  create(size: number, ledger: Ledger): { kr: number; object?: MemoryObject } {
    const slot = this.#freeSlots.length > 0 ? this.#freeSlots[this.#freeSlots.length - 1]! : this.#nextSlot;
    if (slot >= REF_TABLE_SLOTS) return { kr: KERN_RESOURCE_SHORTAGE };
    if (!ledger.charge(size)) return { kr: KERN_RESOURCE_SHORTAGE };
    let sab: SharedArrayBuffer;
    try {
      sab = new SharedArrayBuffer(size);
    } catch {
      ledger.credit(size);
      return { kr: KERN_RESOURCE_SHORTAGE };
    }
    if (slot === this.#nextSlot) this.#nextSlot++;
    else this.#freeSlots.pop();
    const generation = this.#references.initialize({ home: this.#node, slot }, 1);
    const object = new MemoryObject({ home: this.#node, slot, generation, sab });
    this.#resident.set(slot, { object, ledger });
    this.#bytes += size;
    return { kr: KERN_SUCCESS, object };
  }

  terminate(slot: number): void {
    const resident = this.#resident.get(slot);
    if (resident === undefined) throw new Error(`pager ${this.#node}: terminate of unknown slot ${slot}`);
    this.#resident.delete(slot);
    this.#freeSlots.push(slot);
    this.#bytes -= resident.object.size;
    resident.ledger.credit(resident.object.size);
  }

  /** The live object in `slot` (with `generation`, when given), if there is one. */
  object(slot: number, generation?: number): MemoryObject | undefined {
    const object = this.#resident.get(slot)?.object;
    return object !== undefined && (generation === undefined || object.generation === generation) ? object : undefined;
  }

  info(): PagerInfo {
    return { node: globalNode(this.#node), objects: this.#resident.size, bytes: this.#bytes };
  }
}
