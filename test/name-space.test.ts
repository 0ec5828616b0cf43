import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_NAME, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_PORT_DEAD,
  MACH_PORT_NULL, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX,
} from '../src/shared/constants.js';
import { sanitizePortName, type PortOps } from '../src/actors/ipc/ipc-types.js';
import { MACH_PORT_TYPE_SEND_RECEIVE, NameSpace, newEntry } from '../src/actors/ipc/name-space.js';
import { PortRights } from '../src/actors/ipc/right.js';
import type { PortId, PortName } from '../src/shared/types.js';

const P1 = 1 as PortId;
const P2 = 2 as PortId;
const send = (port: PortId) => newEntry(MACH_PORT_TYPE_SEND, port, 1);
const index = (name: PortName) => Math.floor(name / 256);
const gen = (name: PortName) => name % 256;

describe('NameSpace names', () => {
  it('builds names from an index and a generation of 1, never MACH_PORT_NULL or MACH_PORT_DEAD', () => {
    const space = new NameSpace();
    const names = [P1, P2, 3 as PortId].map((port) => space.insert(send(port)));
    expect(names.map(index)).toEqual([0, 1, 2]);
    expect(names.map(gen)).toEqual([1, 1, 1]);
    expect(names).not.toContain(MACH_PORT_NULL);
    expect(names).not.toContain(MACH_PORT_DEAD);
  });

  it('stops resolving a freed name at once and gives its slot a new generation', () => {
    const space = new NameSpace();
    const old = space.insert(send(P1));
    space.remove(old);
    expect(space.lookup(old)).toBeUndefined();
    const reused = space.insert(send(P2));
    expect(index(reused)).toBe(index(old));
    expect(gen(reused)).toBe(2);
    expect(space.lookup(old)).toBeUndefined();
    expect(space.lookup(reused)?.port).toBe(P2);
  });

  it('cycles generations 1..255, skipping 0, so a name returns only after 255 reuses of its slot', () => {
    const space = new NameSpace();
    const first = space.insert(send(P1));
    const seen: number[] = [gen(first)];
    let name = first;
    for (let i = 0; i < 255; i++) {
      space.remove(name);
      name = space.insert(send(P1));
      seen.push(gen(name));
    }
    expect(seen.slice(0, 255)).toEqual(Array.from({ length: 255 }, (_, i) => i + 1));
    expect(name).toBe(first);
  });

  it('reuses freed slots oldest first', () => {
    const space = new NameSpace();
    const [a, b, c] = [1, 2, 3].map((p) => space.insert(send(p as PortId)));
    space.remove(b!);
    space.remove(a!);
    space.remove(c!);
    const again = [4, 5, 6].map((p) => space.insert(send(p as PortId)));
    expect(again.map(index)).toEqual([index(b!), index(a!), index(c!)]);
  });

  it('resolves nothing for names that are not 32-bit unsigned integers or were never issued', () => {
    const space = new NameSpace();
    const name = space.insert(send(P1));
    for (const bad of [name + 0.5, -name, name + 2 ** 32, 0, MACH_PORT_DEAD, name + 256]) {
      expect(space.lookup(bad as PortName)).toBeUndefined();
    }
    expect(sanitizePortName(name)).toBe(name);
    expect([1.5, -1, 2 ** 32, '3', null].map(sanitizePortName)).toEqual([undefined, undefined, undefined, undefined, undefined]);
  });

  it('reports full at maxEntries and rejects a bad maxEntries with RangeError', () => {
    const space = new NameSpace({ maxEntries: 2 });
    space.insert(send(P1));
    expect(space.full).toBe(false);
    space.insert(send(P2));
    expect(space.full).toBe(true);
    expect(() => space.insert(send(3 as PortId))).toThrow(/full/);
    expect(() => new NameSpace({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new NameSpace({ maxEntries: 2 ** 24 })).toThrow(RangeError);
  });
});

describe('NameSpace reverse lookup', () => {
  it('finds the one name holding send or receive rights for a port, and follows retyping', () => {
    const space = new NameSpace();
    const name = space.insert(newEntry(MACH_PORT_TYPE_RECEIVE, P1, 0));
    expect(space.lookupPort(P1)).toBe(name);
    space.setType(name, MACH_PORT_TYPE_SEND_RECEIVE);
    space.lookup(name)!.urefs = 2;
    expect(space.lookupPort(P1)).toBe(name);
    space.setType(name, MACH_PORT_TYPE_DEAD_NAME);
    expect(space.lookupPort(P1)).toBeUndefined();
    expect(space.lookup(name)?.port).toBeNull();
    space.verify();
  });

  it('lists send-once names for a port apart from its send/receive name', () => {
    const space = new NameSpace();
    const so = space.insert(newEntry(MACH_PORT_TYPE_SEND_ONCE, P1, 1));
    expect(space.lookupPort(P1)).toBeUndefined();
    const snd = space.insert(send(P1));
    expect(space.namesOfPort(P1)).toEqual([snd, so]);
    space.remove(so);
    expect(space.namesOfPort(P1)).toEqual([snd]);
    space.remove(snd);
    expect(space.namesOfPort(P1)).toEqual([]);
  });

  it('refuses to name a port twice with send or receive rights (an invariant, asserted)', () => {
    const space = new NameSpace();
    space.insert(send(P1));
    expect(() => space.insert(send(P1))).toThrow(/already named/);
  });

  it('verify catches an entry whose urefs break the rules', () => {
    const space = new NameSpace();
    const name = space.insert(send(P1));
    space.verify();
    space.lookup(name)!.urefs = MACH_PORT_UREFS_MAX + 1;
    expect(() => space.verify()).toThrow(/urefs/);
  });
});

/** Keeps Mach's right counts per port, as a port's home would, from the calls a space makes. */
class CountingOps implements PortOps {
  next = 1;
  readonly srights = new Map<PortId, number>();
  readonly sorights = new Map<PortId, number>();
  readonly died: PortId[] = [];
  createPort(): PortId { return this.#fresh(); }
  createPortSet(): PortId { return this.#fresh(); }
  destroyPortSet(): void {}
  setMembership(): void {}
  makeSend(port: PortId): void { this.#add(this.srights, port, 1); }
  copySend(port: PortId): void { this.#add(this.srights, port, 1); }
  releaseSend(port: PortId): void { this.#add(this.srights, port, -1); }
  makeSendOnce(port: PortId): void { this.#add(this.sorights, port, 1); }
  releaseSendOnce(port: PortId): void { this.#add(this.sorights, port, -1); }
  clearReceiver(): void {}
  destroyReceive(port: PortId): void { this.died.push(port); }
  dnrequestArm(): void {}
  dnrequestCancel(): void {}
  notify(): void {}
  #fresh(): PortId {
    const id = this.next++ as PortId;
    this.srights.set(id, 0);
    this.sorights.set(id, 0);
    return id;
  }
  #add(counts: Map<PortId, number>, port: PortId, delta: number): void {
    const value = (counts.get(port) ?? 0) + delta;
    expect(value).toBeGreaterThanOrEqual(0);
    counts.set(port, value);
  }
}

type Op =
  | { op: 'allocate'; right: number }
  | { op: 'modRefs'; pick: number; right: number; delta: number }
  | { op: 'deallocate'; pick: number }
  | { op: 'destroy'; pick: number }
  | { op: 'makeSend'; pick: number }
  | { op: 'makeSendOnce'; pick: number }
  | { op: 'moveMember'; pick: number; to: number };

const pick = fc.nat(40);
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('allocate' as const), right: fc.integer({ min: -1, max: 5 }) }),
  fc.record({
    op: fc.constant('modRefs' as const), pick, right: fc.integer({ min: 0, max: 5 }),
    delta: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(MACH_PORT_UREFS_MAX, -MACH_PORT_UREFS_MAX)),
  }),
  fc.record({ op: fc.constant('deallocate' as const), pick }),
  fc.record({ op: fc.constant('destroy' as const), pick }),
  fc.record({ op: fc.constant('makeSend' as const), pick }),
  fc.record({ op: fc.constant('makeSendOnce' as const), pick }),
  fc.record({ op: fc.constant('moveMember' as const), pick, to: pick }),
);

describe('name space invariants under random mach_port_* sequences', () => {
  it('keeps names unique, stale names unresolvable, urefs in bounds and right counts exact', () => {
    fc.assert(fc.property(fc.array(opArb, { maxLength: 120 }), fc.integer({ min: 1, max: 12 }), (ops, max) => {
      const counts = new CountingOps();
      const space = new NameSpace({ maxEntries: max });
      const rights = new PortRights(space, counts);
      /** Names freed and not issued again since: none may resolve. */
      const stale = new Set<PortName>();
      const dead = new Set<PortId>();
      // A name outside the live list tests the guessed-name paths too.
      const nameAt = (i: number): PortName => space.names()[i] ?? ((i * 256 + 7) as PortName);

      for (const step of ops) {
        const before = new Set(space.names());
        switch (step.op) {
          case 'allocate': rights.allocate(step.right); break;
          case 'modRefs': rights.modRefs(nameAt(step.pick), step.right, step.delta); break;
          case 'deallocate': rights.deallocate(nameAt(step.pick)); break;
          case 'destroy': rights.destroy(nameAt(step.pick)); break;
          case 'moveMember': rights.moveMember(nameAt(step.pick), step.to === 0 ? 0 as PortName : nameAt(step.to)); break;
          default: {
            // Make a right from a receive right and receive it back into the same space.
            const disposition = step.op === 'makeSend' ? MACH_MSG_TYPE_MAKE_SEND : MACH_MSG_TYPE_MAKE_SEND_ONCE;
            const { right } = rights.copyin(nameAt(step.pick), disposition);
            if (right !== null && rights.copyout(right).kr !== 0) {
              // No room for a send-once name: the message is destroyed, and the right with it.
              expect(right.kind).toBe('send-once');
              counts.releaseSendOnce((right as { portId: PortId }).portId);
            }
          }
        }
        // The kernel tells every space holding rights to a dead port; here there is one space.
        for (const port of counts.died.splice(0)) {
          dead.add(port);
          rights.portDied(port);
        }

        const after = space.names();
        expect(new Set(after).size).toBe(after.length);
        expect(after.length).toBeLessThanOrEqual(max);
        for (const name of before) if (!after.includes(name)) stale.add(name);
        for (const name of after) stale.delete(name);
        for (const name of stale) {
          expect(space.lookup(name)).toBeUndefined();
          expect(rights.type(name).kr).toBe(KERN_INVALID_NAME);
        }
        space.verify();

        // Right counts: one send right per name holding send, one send-once per send-once name.
        const liveSend = new Map<PortId, number>();
        const liveSendOnce = new Map<PortId, number>();
        for (const name of after) {
          const entry = space.lookup(name)!;
          const refs = rights.getRefs(name, 0).refs + rights.getRefs(name, 4).refs;
          expect(refs).toBeGreaterThanOrEqual(0);
          expect(refs).toBeLessThanOrEqual(MACH_PORT_UREFS_MAX);
          if (entry.type & MACH_PORT_TYPE_SEND) liveSend.set(entry.port!, (liveSend.get(entry.port!) ?? 0) + 1);
          if (entry.type === MACH_PORT_TYPE_SEND_ONCE) {
            liveSendOnce.set(entry.port!, (liveSendOnce.get(entry.port!) ?? 0) + 1);
          }
        }
        for (const [port, count] of counts.srights) {
          if (!dead.has(port)) expect(count).toBe(liveSend.get(port) ?? 0);
        }
        for (const [port, count] of counts.sorights) {
          if (!dead.has(port)) expect(count).toBe(liveSendOnce.get(port) ?? 0);
        }
      }
    }), { numRuns: 300 });
  });
});
