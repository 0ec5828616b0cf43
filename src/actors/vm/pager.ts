/**
 * The pager interface (Mach's memory_object / memory_object_default protocol, reduced to what a
 * SharedArrayBuffer-backed object needs): one file per pager implements it.
 */
import type { PagerInfo } from '../../shared/protocol.js';
import type { Ledger } from '../kern/ledger.js';
import type { MemoryObject } from './memory-object.js';

export interface Pager {
  /**
   * memory_object_create: a new zero-filled object of `size` bytes charged to `ledger`, holding
   * one reference for the map that asked. Returns KERN_RESOURCE_SHORTAGE when the ledger is
   * exhausted or the memory cannot be had.
   */
  create(size: number, ledger: Ledger): { kr: number; object?: MemoryObject };
  /** memory_object_terminate: the last reference is gone; free the memory, credit its ledger. */
  terminate(slot: number): void;
  info(): PagerInfo;
}
