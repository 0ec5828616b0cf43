/**
 * Task images name the memory objects the child's node holds already instead of carrying their
 * buffers, and a node that let a named buffer go fetches it from the object's home pager. Two
 * node kernels in one realm, wired to each other, so every step is deterministic.
 */
import { describe, expect, it } from 'vitest';
import { Ledger } from '../src/actors/kern/ledger.js';
import { ObjectReferences, REF_TABLE_BYTES } from '../src/actors/vm/memory-object.js';
import { NodeKernel, type NodeLinks } from '../src/actors/kern/node-kernel.js';
import { PortTable } from '../src/actors/ipc/port-table.js';
import { type TaskImage, type TaskLedgers } from '../src/shared/protocol.js';
import type { NodeId, TaskId } from '../src/shared/types.js';

function twoNodes() {
  const refTables = [new SharedArrayBuffer(REF_TABLE_BYTES), new SharedArrayBuffer(REF_TABLE_BYTES)];
  const portTable = PortTable.create();
  const nodes: NodeKernel[] = [];
  const links: NodeLinks = {
    post: () => {},
    callNode: async (node, method, args) =>
      (nodes[node]![method] as (...routineArgs: unknown[]) => { kr: number })(...args),
  };
  for (const node of [0, 1]) {
    nodes.push(new NodeKernel({ node: node as NodeId, nodes: 2, pageSize: 4096, refTables, portTable }, links));
  }
  const ledgers = [Ledger.create(0, Infinity).ref, Ledger.create(1, Infinity).ref] as unknown as TaskLedgers;
  const parent = nodes[0]!.taskBootstrap([0, 0], ledgers).task!;
  const { address } = nodes[0]!.vmAllocate(parent, 0, 4096, true);
  nodes[0]!.vmWrite(parent, address, new Uint8Array([1, 2, 3]));
  return { nodes, parent, address, references: new ObjectReferences(refTables) };
}

function cloneImage(nodes: NodeKernel[], parent: TaskId): TaskImage {
  const reply = nodes[0]!.taskFork(parent, 'clone', true, 1 as NodeId, null);
  expect(reply.kr).toBe(0);
  return reply.image!;
}

describe('task images between nodes', () => {
  it('carry a buffer the first time and only name it while the child node holds it', async () => {
    const { nodes, parent, address } = twoNodes();
    const first = cloneImage(nodes, parent);
    expect(first.buffers[0]).toBeInstanceOf(SharedArrayBuffer);
    const adopted = nodes[1]!.taskAdopt(first, []);
    expect(adopted).not.toBeInstanceOf(Promise);
    const child = (adopted as { child: TaskId }).child;

    const second = cloneImage(nodes, parent);
    expect(second.buffers[0]).toBeNull();
    const again = nodes[1]!.taskAdopt(second, []);
    expect(again).not.toBeInstanceOf(Promise);
    expect(nodes[1]!.vmRead((again as { child: TaskId }).child, address, 3).data).toEqual(new Uint8Array([1, 2, 3]));

    // Once no task on node 1 maps it, images carry the buffer again.
    nodes[1]!.taskTerminate(child);
    nodes[1]!.taskTerminate((again as { child: TaskId }).child);
    expect(cloneImage(nodes, parent).buffers[0]).toBeInstanceOf(SharedArrayBuffer);
  });

  it('a node that let a named buffer go fetches it from the home pager, and the child maps the same memory', async () => {
    const { nodes, parent, address, references } = twoNodes();
    // Node 1 claims the buffer, then has none: as if it let go between capture and adoption.
    references.setResident({ home: 0 as NodeId, slot: 0 }, 1, true);
    const image = cloneImage(nodes, parent);
    expect(image.buffers[0]).toBeNull();
    const adopted = nodes[1]!.taskAdopt(image, []);
    expect(adopted).toBeInstanceOf(Promise);
    const { kr, child } = await adopted;
    expect(kr).toBe(0);
    nodes[1]!.vmWrite(child!, address, new Uint8Array([9]));
    expect(nodes[0]!.vmRead(parent, address, 3).data).toEqual(new Uint8Array([9, 2, 3]));
  });
});
