/**
 * Port name spaces: one task's table of names → right entries (Mach `ipc_space`/`ipc_entry`).
 * Names carry a generation so a freed name does not reach the next right stored in its slot.
 */
import {
  MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE,
  MACH_PORT_TYPE_SEND, MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX,
} from '../../shared/constants.js';
import { ok as assert } from 'node:assert/strict';
import { PORT_NAME_NULL } from './ipc-types.js';
import type { PortId, PortName } from '../../shared/types.js';

/** Send and receive rights for one port share one name; a name holds no other combination. */
export const MACH_PORT_TYPE_SEND_RECEIVE = MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE;

/** Type bits that mean "this entry names a port" (and so has `port` set). */
const PORT_RIGHT_TYPES = MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE | MACH_PORT_TYPE_SEND_ONCE;

const VALID_TYPES: ReadonlySet<number> = new Set([
  MACH_PORT_TYPE_SEND, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND_RECEIVE,
  MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_DEAD_NAME,
]);

/** Generations run 1..255, so `index * 256 + gen` is never MACH_PORT_NULL. */
const GEN_MAX = 0xff;
/** Index 0xffffff with generation 255 would be MACH_PORT_DEAD; stop one index short. */
const INDEX_LIMIT = 0xffffff;

/**
 * One right entry. `type` holds MACH_PORT_TYPE_* bits (never DNREQUEST, which is derived from
 * `dnrequest`). `urefs` counts the user references of a send right or dead name; a send-once
 * entry holds exactly 1; receive-only and port-set entries hold 0, their single reference being
 * implied by the type bit, as in Mach's `ie_bits`.
 *
 * Right routines may change `urefs`, `dnrequest`, `members` and `inSet` in place; `type` and
 * `port` change only through `NameSpace.setType`, which keeps the reverse indices right.
 */
export interface IpcEntry {
  type: number;
  urefs: number;
  /** The port (send, receive, send-once) or the set's own id (port set); null for a dead name. */
  port: PortId | null;
  /** Port set only: the names of its member receive rights, in joining order. */
  members: Set<PortName> | null;
  /** Receive right only: the name of the set it belongs to, or MACH_PORT_NULL. */
  inSet: PortName;
  /** The send-once right (its port) registered for a dead-name notification, if any. */
  dnrequest: PortId | null;
}

interface Slot {
  gen: number;
  entry: IpcEntry | null;
}

/** Where a port is named in one space: its send/receive name and any send-once names. */
interface PortNames {
  right: PortName;
  sendOnce: Set<PortName>;
}

/** Why a chosen name cannot take a new entry (see `NameSpace.refuseName`). */
export type NameRefusal = 'malformed' | 'exists' | 'far' | 'full';

export interface NameSpaceOptions {
  /** The most names the space may hold at once (`task_set_port_space`); default 2^24 − 1. */
  readonly maxEntries?: number;
}

/** A fresh entry with no rights: the caller sets what it holds. */
export function newEntry(type: number, port: PortId | null, urefs: number): IpcEntry {
  return {
    type, urefs, port,
    members: type === MACH_PORT_TYPE_PORT_SET ? new Set() : null,
    inSet: PORT_NAME_NULL,
    dnrequest: null,
  };
}

/** The table behind one task's port names (Mach `ipc_space`). Pure data: no port effects. */
/** How far beyond the highest name index in use a chosen name may lie. */
const MAX_NAME_GAP = 1 << 16;

export class NameSpace {
  readonly #slots: Slot[] = [];
  /** Free slot indices, oldest first: a freed index waits as long as possible before reuse. */
  #free: number[] = [];
  #freeHead = 0;
  #size = 0;
  readonly #maxEntries: number;
  readonly #byPort = new Map<PortId, PortNames>();

  constructor(options: NameSpaceOptions = {}) {
    const max = options.maxEntries ?? INDEX_LIMIT;
    if (!Number.isSafeInteger(max) || max < 1 || max > INDEX_LIMIT) {
      throw new RangeError(`options.maxEntries must be an integer from 1 to ${INDEX_LIMIT}`);
    }
    this.#maxEntries = max;
  }

  /** How many names are in use. */
  get size(): number {
    return this.#size;
  }

  /** True when no further name can be allocated (callers answer KERN_NO_SPACE). */
  get full(): boolean {
    return this.#size >= this.#maxEntries;
  }

  /** The entry `name` denotes, or undefined for a free, stale or never-issued name. */
  lookup(name: PortName): IpcEntry | undefined {
    if (!Number.isInteger(name) || name < 0 || name > 0xffffffff) return undefined;
    const slot = this.#slots[Math.floor(name / 256)];
    return slot !== undefined && slot.gen === name % 256 ? slot.entry ?? undefined : undefined;
  }

  /** The name under which this space holds a send or receive right for `port` (copyout's hash). */
  lookupPort(port: PortId): PortName | undefined {
    const names = this.#byPort.get(port);
    return names === undefined || names.right === PORT_NAME_NULL ? undefined : names.right;
  }

  /** Every name in this space that holds a send, receive or send-once right for `port`. */
  namesOfPort(port: PortId): PortName[] {
    const names = this.#byPort.get(port);
    if (names === undefined) return [];
    const all = names.right === PORT_NAME_NULL ? [] : [names.right];
    return [...all, ...names.sendOnce];
  }

  /**
   * Stores `entry` under a new name and returns it.
   * Conditions: the space is not `full`; `entry.port` is not already named here by a send or
   * receive right when the entry holds one (the caller merges instead).
   */
  insert(entry: IpcEntry): PortName {
    assert(!this.full, 'insert into a full name space');
    let index: number;
    if (this.#freeHead < this.#free.length) {
      index = this.#free[this.#freeHead++]!;
      if (this.#freeHead > 64 && this.#freeHead * 2 > this.#free.length) {
        this.#free = this.#free.slice(this.#freeHead);
        this.#freeHead = 0;
      }
    } else {
      index = this.#slots.length;
      this.#slots.push({ gen: 1, entry: null });
    }
    const slot = this.#slots[index]!;
    slot.entry = entry;
    this.#size++;
    const name = (index * 256 + slot.gen) as PortName;
    this.#index(name, entry);
    return name;
  }

  /**
   * Why `name` cannot be chosen for a new entry, or null when it can: 'malformed' for
   * MACH_PORT_NULL, MACH_PORT_DEAD, a non-32-bit value or generation 0; 'exists' when its index
   * holds an entry, under this generation or another (xnu's ipc_entry_alloc_name); 'far' when
   * the index lies more than 2^16 past the table, which does not grow that far at once; 'full'.
   */
  refuseName(name: PortName): NameRefusal | null {
    if (!Number.isInteger(name) || name <= 0 || name >= 0xffffffff || name % 256 === 0) return 'malformed';
    const index = Math.floor(name / 256);
    if (this.#slots[index]?.entry != null) return 'exists';
    if (index > this.#slots.length + MAX_NAME_GAP) return 'far';
    return this.full ? 'full' : null;
  }

  /**
   * Stores `entry` under a name the caller chose (mach_port_insert_right).
   * Conditions: as for `insert`, and `refuseName(name)` is null.
   */
  insertNamed(name: PortName, entry: IpcEntry): void {
    assert(this.refuseName(name) === null, `insertNamed under refused name ${name}`);
    const index = Math.floor(name / 256);
    while (this.#slots.length <= index) {
      this.#free.push(this.#slots.length);
      this.#slots.push({ gen: 1, entry: null });
    }
    const slot = this.#slots[index]!;
    const queued = this.#free.indexOf(index, this.#freeHead);
    if (queued >= 0) this.#free.splice(queued, 1);
    slot.gen = name % 256;
    slot.entry = entry;
    this.#size++;
    this.#index(name, entry);
  }

  /**
   * Changes what `name` holds. A type without a port right drops `port` (a dead name names
   * nothing); the reverse indices follow.
   * Conditions: `name` denotes an entry; `type` is a valid non-empty combination.
   */
  setType(name: PortName, type: number): void {
    const entry = this.lookup(name);
    assert(entry !== undefined, `setType on free name ${name}`);
    assert(VALID_TYPES.has(type), `setType to invalid type ${type}`);
    this.#unindex(name, entry);
    entry.type = type;
    if ((type & PORT_RIGHT_TYPES) === 0 && type !== MACH_PORT_TYPE_PORT_SET) entry.port = null;
    this.#index(name, entry);
  }

  /**
   * Frees `name`. Its generation advances, so the old name stops resolving at once, and its
   * index goes to the back of the free queue.
   * Conditions: `name` denotes an entry.
   */
  remove(name: PortName): void {
    const entry = this.lookup(name);
    assert(entry !== undefined, `remove of free name ${name}`);
    this.#unindex(name, entry);
    const index = Math.floor(name / 256);
    const slot = this.#slots[index]!;
    slot.entry = null;
    slot.gen = slot.gen === GEN_MAX ? 1 : slot.gen + 1;
    this.#free.push(index);
    this.#size--;
  }

  /** All names in use, ascending. */
  names(): PortName[] {
    const names: PortName[] = [];
    this.#slots.forEach((slot, index) => {
      if (slot.entry !== null) names.push((index * 256 + slot.gen) as PortName);
    });
    return names;
  }

  /**
   * Checks every invariant of the table and its entries; throws on the first broken one.
   * @internal For tests and debugging: a failure is a kernel bug, never a user error.
   */
  verify(): void {
    let count = 0;
    const seen = new Map<PortId, PortName>();
    for (const name of this.names()) {
      const entry = this.lookup(name)!;
      count++;
      assert(name !== 0 && name !== 0xffffffff, `reserved name ${name} in use`);
      assert(VALID_TYPES.has(entry.type), `name ${name} has invalid type ${entry.type}`);
      const { type, urefs } = entry;
      if (type & MACH_PORT_TYPE_SEND || type === MACH_PORT_TYPE_DEAD_NAME) {
        assert(urefs >= 1 && urefs <= MACH_PORT_UREFS_MAX, `name ${name} urefs ${urefs}`);
      } else if (type === MACH_PORT_TYPE_SEND_ONCE) {
        assert(urefs === 1, `send-once name ${name} urefs ${urefs}`);
      } else {
        assert(urefs === 0, `name ${name} of type ${type} urefs ${urefs}`);
      }
      assert((entry.port === null) === (type === MACH_PORT_TYPE_DEAD_NAME), `name ${name} port`);
      if (type & MACH_PORT_TYPE_SEND_RECEIVE) {
        assert(!seen.has(entry.port!), `port ${entry.port} named twice`);
        seen.set(entry.port!, name);
        assert(this.lookupPort(entry.port!) === name, `reverse map misses ${name}`);
      }
      if (type === MACH_PORT_TYPE_SEND_ONCE) {
        assert(this.#byPort.get(entry.port!)?.sendOnce.has(name) === true, `so index ${name}`);
      }
      assert(entry.dnrequest === null || (type & PORT_RIGHT_TYPES) !== 0, `dnrequest ${name}`);
      assert((entry.members !== null) === (type === MACH_PORT_TYPE_PORT_SET), `members ${name}`);
      for (const member of entry.members ?? []) {
        assert(this.lookup(member)?.inSet === name, `set ${name} member ${member} disagrees`);
      }
      if (entry.inSet !== PORT_NAME_NULL) {
        assert((type & MACH_PORT_TYPE_RECEIVE) !== 0, `non-receive ${name} in a set`);
        assert(this.lookup(entry.inSet)?.members?.has(name) === true, `set of ${name} disagrees`);
      }
    }
    assert(count === this.#size, `size ${this.#size} but ${count} entries`);
    for (const [port, names] of this.#byPort) {
      assert(names.right === PORT_NAME_NULL || seen.get(port) === names.right, `stale reverse ${port}`);
      for (const so of names.sendOnce) {
        assert(this.lookup(so)?.port === port, `stale send-once index ${so}`);
      }
    }
  }

  #index(name: PortName, entry: IpcEntry): void {
    if ((entry.type & PORT_RIGHT_TYPES) === 0) return;
    const port = entry.port!;
    let names = this.#byPort.get(port);
    if (names === undefined) {
      names = { right: PORT_NAME_NULL, sendOnce: new Set() };
      this.#byPort.set(port, names);
    }
    if (entry.type === MACH_PORT_TYPE_SEND_ONCE) {
      names.sendOnce.add(name);
    } else {
      assert(names.right === PORT_NAME_NULL, `port ${port} already named ${names.right}`);
      names.right = name;
    }
  }

  #unindex(name: PortName, entry: IpcEntry): void {
    if ((entry.type & PORT_RIGHT_TYPES) === 0) return;
    const port = entry.port!;
    const names = this.#byPort.get(port);
    if (names === undefined) return;
    if (entry.type === MACH_PORT_TYPE_SEND_ONCE) names.sendOnce.delete(name);
    else if (names.right === name) names.right = PORT_NAME_NULL;
    if (names.right === PORT_NAME_NULL && names.sendOnce.size === 0) this.#byPort.delete(port);
  }
}
