/**
 * Out-of-line message memory of one task (the OolMemory the IPC layer calls): a region sent
 * shared carries a reference to the object behind it, one sent copied a private copy of its
 * bytes; a region that arrives is mapped on the node's canonical object.
 */
import { KERN_SUCCESS } from '../../shared/constants.js';
import type { OolMemory } from '../ipc/mach-msg.js';
import type { Ledger } from '../kern/ledger.js';
import type { ObjectCache } from './object-cache.js';
import type { VmMap } from './vm-map.js';

/** The OolMemory of the task whose address space is `map`, its copies charged to `ledger`. */
export function oolMemory(map: VmMap, ledger: Ledger, cache: ObjectCache): OolMemory {
  return {
    capture: (descriptor) => {
      const { address, size } = descriptor;
      if (descriptor.share === true) {
        const range = map.objectRange(address, size);
        if (range.object === undefined) return { kr: range.kr };
        cache.references.reference(range.object);
        return { kr: KERN_SUCCESS, region: { object: range.object, offset: range.offset!, size } };
      }
      const read = map.read(address, size);
      if (read.data === undefined) return { kr: read.kr };
      const made = cache.pager.create(map.roundPage(Math.max(size, 1)), ledger);
      if (made.object === undefined) return { kr: made.kr };
      new Uint8Array(made.object.sab).set(read.data);
      return { kr: KERN_SUCCESS, region: { object: made.object, offset: 0, size } };
    },
    map: (region) => {
      const mapped = map.mapObject(cache.object(region.object)!, region.offset, region.size);
      // The map holds one reference per object: a region of an object it maps already, or
      // one it could not map, gives its reference back.
      if (!mapped.fresh) cache.release([region.object]);
      return mapped;
    },
    deallocate: (address, size) => cache.release(map.deallocate(address, size).unmapped),
  };
}
