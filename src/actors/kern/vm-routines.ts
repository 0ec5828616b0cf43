/**
 * NodeApi's vm_* routines, each run on the task's map, and the pager's: what the host and other
 * nodes ask of this node's memory. NodeKernel extends this class, so its routine table stays
 * one object while the memory routines live here.
 */
import { KERN_INVALID_ARGUMENT, KERN_SUCCESS } from '../../shared/constants.js';
import type { KrReply, PagerInfo, RegionInfo, ReleasingReply, ViewReply } from '../../shared/protocol.js';
import type { MemoryObjectName, NodeId, TaskId } from '../../shared/types.js';
import type { ObjectCache } from '../vm/object-cache.js';
import type { VmMapEntry } from '../vm/vm-map.js';
import { PortRoutines } from './port-routines.js';
import type { TaskActor } from './task.js';

export abstract class VmRoutines extends PortRoutines {
  abstract readonly id: NodeId;
  /** This node's memory objects and its pager. */
  protected abstract readonly cache: ObjectCache;
  /** Live task `id` on this node. */
  protected abstract taskOf(id: TaskId): TaskActor | undefined;

  vmAllocate(id: TaskId, address: number, size: number, anywhere: boolean): { kr: number; address: number } {
    const task = this.taskOf(id);
    if (task === undefined || typeof anywhere !== 'boolean') return { kr: KERN_INVALID_ARGUMENT, address: 0 };
    return task.map.allocate(address, size, anywhere, (length) => this.cache.pager.create(length, task.pagedLedger));
  }

  vmDeallocate(id: TaskId, address: number, size: number): ReleasingReply {
    const task = this.taskOf(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT, released: [] };
    const { kr, unmapped } = task.map.deallocate(address, size);
    const released: MemoryObjectName[] = [];
    this.cache.release(unmapped, released);
    return { kr, released };
  }

  vmProtect(id: TaskId, address: number, size: number, setMaximum: boolean, protection: number): KrReply {
    const task = this.taskOf(id);
    if (task === undefined || typeof setMaximum !== 'boolean') return { kr: KERN_INVALID_ARGUMENT };
    return { kr: task.map.protect(address, size, setMaximum, protection) };
  }

  vmInherit(id: TaskId, address: number, size: number, inheritance: number): KrReply {
    return { kr: this.taskOf(id)?.map.inherit(address, size, inheritance) ?? KERN_INVALID_ARGUMENT };
  }

  vmRegion(id: TaskId, address: number): { kr: number; region?: RegionInfo } {
    const task = this.taskOf(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT };
    const { kr, entry } = task.map.region(address);
    return entry === undefined ? { kr } : { kr, region: this.#regionInfo(entry) };
  }

  vmRegions(id: TaskId): { kr: number; regions?: RegionInfo[] } {
    const task = this.taskOf(id);
    if (task === undefined) return { kr: KERN_INVALID_ARGUMENT };
    return { kr: KERN_SUCCESS, regions: [...task.map.entries()].map((entry) => this.#regionInfo(entry)) };
  }

  #regionInfo(entry: VmMapEntry): RegionInfo {
    const { start, end, protection, maxProtection, inheritance, offset, object } = entry;
    // Another map, not merely a reference: images and messages in flight hold references too.
    return { address: start, size: end - start, protection, maxProtection, inheritance, shared: this.cache.shared(object), offset, object: object.label };
  }

  vmRead(id: TaskId, address: number, size: number): { kr: number; data?: Uint8Array } {
    return this.taskOf(id)?.map.read(address, size) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  vmWrite(id: TaskId, address: number, data: Uint8Array): KrReply {
    return { kr: this.taskOf(id)?.map.write(address, data) ?? KERN_INVALID_ARGUMENT };
  }

  vmCopy(id: TaskId, source: number, size: number, dest: number): KrReply {
    return { kr: this.taskOf(id)?.map.copy(source, size, dest) ?? KERN_INVALID_ARGUMENT };
  }

  vmView(id: TaskId, address: number, size: number): ViewReply {
    return this.taskOf(id)?.map.view(address, size) ?? { kr: KERN_INVALID_ARGUMENT };
  }

  /** memory_object_terminate for objects homed here whose last reference went elsewhere. */
  pagerRelease(objects: readonly MemoryObjectName[]): KrReply {
    if (!Array.isArray(objects) || objects.some((object) => object.home !== this.id)) {
      return { kr: KERN_INVALID_ARGUMENT };
    }
    for (const object of objects) this.cache.pager.terminate(object.slot);
    return { kr: KERN_SUCCESS };
  }

  /** The buffers of live objects homed here, for a node adopting an image that only named them. */
  pagerBuffers(slots: readonly number[]): { kr: number; buffers?: SharedArrayBuffer[] } {
    const buffers = slots.map((slot) => this.cache.pager.object(slot)?.sab);
    return buffers.includes(undefined) ? { kr: KERN_INVALID_ARGUMENT } : { kr: KERN_SUCCESS, buffers: buffers as SharedArrayBuffer[] };
  }

  pagerInfo(): PagerInfo { return this.cache.pager.info(); }
}
