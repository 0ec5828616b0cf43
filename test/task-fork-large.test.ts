/**
 * Forking a task with more memory objects than one small table holds (KeyedTable splits its
 * Map above 2048 keys): the direct fork on one node and the image for another node give the
 * child exactly the regions inheritance says, one reference per distinct shared object, and
 * terminating the child gives them all back. Two node kernels in one realm, wired to each other.
 */
import { describe, expect, it } from 'vitest';
import { Ledger } from '../src/actors/kern/ledger.js';
import { ObjectReferences, REF_TABLE_BYTES } from '../src/actors/vm/memory-object.js';
import { KeyedTable } from '../src/actors/vm/keyed-table.js';
import { NodeKernel, type NodeLinks } from '../src/actors/kern/node-kernel.js';
import { PortTable } from '../src/actors/ipc/port-table.js';
import { KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE, VM_PROT_READ } from '../src/shared/constants.js';
import type { RegionInfo, TaskLedgers } from '../src/shared/protocol.js';
import type { MemoryObjectName, NodeId, TaskId } from '../src/shared/types.js';

const REGIONS = 2600;
const INHERITANCE = [VM_INHERIT_SHARE, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE] as const;

function setUp() {
  const refTables = [new SharedArrayBuffer(REF_TABLE_BYTES), new SharedArrayBuffer(REF_TABLE_BYTES)];
  const portTable = PortTable.create();
  const nodes: NodeKernel[] = [];
  const links: NodeLinks = {
    post: () => {},
    callNode: async (node, method, args) => (nodes[node]![method] as (...routineArgs: unknown[]) => { kr: number })(...args),
  };
  for (const node of [0, 1]) nodes.push(new NodeKernel({ node: node as NodeId, nodes: 2, pageSize: 4096, refTables, portTable }, links));
  const ledgers = [Ledger.create(0, Infinity).ref, Ledger.create(1, Infinity).ref] as unknown as TaskLedgers;
  const parent = nodes[0]!.taskBootstrap([0, 0], ledgers).task!;
  for (let index = 0; index < REGIONS; index++) {
    const { address } = nodes[0]!.vmAllocate(parent, 0, 4096, true);
    nodes[0]!.vmWrite(parent, address, new Uint8Array([index & 0xff, index >> 8]));
    nodes[0]!.vmInherit(parent, address, 4096, INHERITANCE[index % INHERITANCE.length]!);
    if (index % 5 === 0) nodes[0]!.vmProtect(parent, address, 4096, false, VM_PROT_READ);
  }
  return { nodes, parent, references: new ObjectReferences(refTables) };
}

const name = (region: RegionInfo): MemoryObjectName => {
  const [home, slot] = region.object.split(':').map(Number);
  return { home: home as NodeId, slot: slot! };
};

/** What the child of a 'create' must map: the parent's regions but NONE, COPY ones in new objects. */
function checkChild(nodes: NodeKernel[], on: number, parent: TaskId, child: TaskId, references: ObjectReferences): void {
  const before = nodes[0]!.vmRegions(parent).regions!;
  const after = nodes[on]!.vmRegions(child).regions!;
  const inherited = before.filter((region) => region.inheritance !== VM_INHERIT_NONE);
  expect(after.map(({ address, size, protection, maxProtection, inheritance }) => ({ address, size, protection, maxProtection, inheritance })))
    .toEqual(inherited.map(({ address, size, protection, maxProtection, inheritance }) => ({ address, size, protection, maxProtection, inheritance })));
  after.forEach((region, index) => {
    const from = inherited[index]!;
    const shared = from.inheritance === VM_INHERIT_SHARE;
    expect(region.object === from.object).toBe(shared);
    expect(references.count(name(region))).toBe(shared ? 2 : 1);
    expect(nodes[on]!.vmRead(child, region.address, 2).data).toEqual(nodes[0]!.vmRead(parent, from.address, 2).data);
  });
}

describe('forking a task of many objects', () => {
  it('on its node: SHARE shares, COPY copies, NONE is left out, one reference per shared object, all back on terminate', () => {
    const { nodes, parent, references } = setUp();
    const objects = nodes[0]!.pagerInfo().objects;
    const reply = nodes[0]!.taskFork(parent, 'create', true, 0 as NodeId, null);
    expect(reply.kr).toBe(KERN_SUCCESS);
    checkChild(nodes, 0, parent, reply.child!, references);
    expect(nodes[0]!.taskTerminate(reply.child!).kr).toBe(KERN_SUCCESS);
    expect(nodes[0]!.pagerInfo().objects).toBe(objects);
    for (const region of nodes[0]!.vmRegions(parent).regions!) expect(references.count(name(region))).toBe(1);
  });

  it('onto another node through an image: the same child, and terminating it gives every reference back', async () => {
    const { nodes, parent, references } = setUp();
    const objects = nodes[0]!.pagerInfo().objects;
    const reply = nodes[0]!.taskFork(parent, 'create', true, 1 as NodeId, null);
    expect(reply.image!.buffers.length).toBe(REGIONS - REGIONS / INHERITANCE.length);
    const adopted = await nodes[1]!.taskAdopt(structuredClone(reply.image!), []);
    expect(adopted.kr).toBe(KERN_SUCCESS);
    checkChild(nodes, 1, parent, adopted.child!, references);
    const { released } = nodes[1]!.taskTerminate(adopted.child!);
    nodes[0]!.pagerRelease(released);
    expect(nodes[0]!.pagerInfo().objects).toBe(objects);
    for (const region of nodes[0]!.vmRegions(parent).regions!) expect(references.count(name(region))).toBe(1);
  });
});

describe('KeyedTable', () => {
  it('keeps every record across the split into shards, and after deletes and clear', () => {
    const table = new KeyedTable<number>();
    const keys = Array.from({ length: 5000 }, (_, index) => (index % 3) * 2 ** 20 + index);
    keys.forEach((key, index) => table.set(key, index));
    table.set(keys[7]!, -7);
    expect(table.size).toBe(5000);
    expect(table.get(keys[7]!)).toBe(-7);
    expect(table.get(keys[4999]!)).toBe(4999);
    for (const key of keys.slice(0, 2500)) expect(table.delete(key)).toBe(true);
    expect(table.delete(keys[0]!)).toBe(false);
    expect(table.size).toBe(2500);
    expect(table.values().sort((a, b) => a - b)).toEqual(keys.slice(2500).map((_, index) => index + 2500));
    table.clear();
    expect([table.size, table.get(keys[4999]!), table.values()]).toEqual([0, undefined, []]);
  });
});
