/**
 * Resource limits answer with codes, not exceptions: port-table slots return to one pool every
 * node draws from, a full table answers KERN_RESOURCE_SHORTAGE (never RangeError), the fork
 * path releases an image once when it cannot be built, and a second shutdown() waits for the
 * first. Table and node-kernel tests run in one realm (two PortTable views of one SAB, node
 * kernels wired to each other), so every step is deterministic.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_NODE_DOWN, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, MACH_PORT_RIGHT_PORT_SET, MACH_PORT_RIGHT_RECEIVE,
  VM_INHERIT_COPY, krName,
} from 'norma-rt';
import { Ledger } from '../src/actors/kern/ledger.js';
import { ObjectReferences, REF_TABLE_BYTES } from '../src/actors/vm/memory-object.js';
import { NodeKernel, type NodeLinks } from '../src/actors/kern/node-kernel.js';
import { PORT_SLOTS, PortKind, PortTable, portSlot } from '../src/actors/ipc/port-table.js';
import { LocalPort } from '../src/actors/ipc/local-port.js';
import { systemClock } from '../src/actors/ipc/clock.js';
import type { NodeToNode, TaskLedgers } from '../src/shared/protocol.js';
import type { NodeId, TaskId, PortId, MemoryObjectName } from '../src/shared/types.js';
import { bootKernel, fixture, snapshot } from './helpers.js';
import { TaskImageWriter } from '../src/actors/kern/task-fork.js';

const node0 = 0 as NodeId;
const node1 = 1 as NodeId;

/** Allocates on `table` until it is full; returns the ports. */
function fill(table: PortTable): PortId[] {
  const ports: PortId[] = [];
  for (let port = table.allocate(PortKind.PORT); port !== undefined; port = table.allocate(PortKind.PORT)) ports.push(port);
  return ports;
}

describe('the port table', () => {
  it('returns slots killed on another node to a pool the allocating node draws from (no drift)', () => {
    const sab = PortTable.create(2);
    const [zero, one] = [new PortTable(sab, node0), new PortTable(sab, node1)];
    const made = fill(zero);
    expect(made).toHaveLength(PORT_SLOTS - 1);
    expect(zero.allocate(PortKind.PORT)).toBeUndefined();
    for (const port of made) expect(one.kill(port)).toBe(true);
    expect(zero.available()).toBe(PORT_SLOTS - 1);
    // Node 0 can make every port again, though node 1 freed them all.
    const again = fill(zero);
    expect(again).toHaveLength(PORT_SLOTS - 1);
    // New generations: no stale id names a new port.
    expect(made.some((port) => zero.isAlive(port))).toBe(false);
    expect(again.every((port) => one.isAlive(port) && one.location(port) === node0)).toBe(true);
  });

  it('kills a port once: a second kill, from any node, frees nothing more', () => {
    const sab = PortTable.create(2);
    const [zero, one] = [new PortTable(sab, node0), new PortTable(sab, node1)];
    const port = zero.allocate(PortKind.PORT)!;
    const before = zero.available();
    expect(one.kill(port)).toBe(true);
    expect(zero.kill(port)).toBe(false);
    expect(zero.available()).toBe(before + 1);
    const next = one.allocate(PortKind.PORT)!;
    expect(zero.allocate(PortKind.PORT)).not.toBe(next);
    expect(zero.available()).toBe(before - 1);
  });

  it('killNode kills exactly the ports located on that node, waking the nodes whose senders wait on them', () => {
    const sab = PortTable.create(2);
    const rung: NodeId[] = [];
    const [zero, one] = [new PortTable(sab, node0, (node) => rung.push(node)), new PortTable(sab, node1)];
    zero.wakeHereWith(() => rung.push(node0));
    const mine = zero.allocate(PortKind.PORT)!;
    const theirs = [one.allocate(PortKind.PORT)!, one.allocate(PortKind.PORT_SET)!];
    zero.setQlimit(theirs[0]!, 1);
    expect(zero.reserve(theirs[0]!)).toBe('reserved');
    expect(zero.reserve(theirs[0]!)).toBe('full');
    zero.setBlocked(portSlot(theirs[0]!), true);
    expect(zero.killNode(node1).sort()).toEqual([...theirs].sort());
    expect(rung).toEqual([node0]);
    expect(zero.reserve(theirs[0]!)).toBe('dead');
    expect(zero.isAlive(mine)).toBe(true);
    expect(one.killNode(node1)).toEqual([]);
  });

  it('places handed to blocked senders hold no message: a port still drops the order state of dead senders', () => {
    const table = new PortTable(PortTable.create(1), node0);
    const port = table.allocate(PortKind.PORT)!;
    const local = new LocalPort(port, systemClock);
    const dead = table.allocate(PortKind.TASK)!;
    local.expected.set(dead, 7);
    table.kill(dead);
    table.setQlimit(port, 1);
    expect(table.reserve(port)).toBe('reserved');
    table.setBlocked(portSlot(port), true);
    // The message is dequeued and its place handed at once to the sender waiting here.
    table.unreserve(port);
    expect([table.msgcount(port), table.handed(port)]).toEqual([1, 1]);
    local.prune(table, true);
    expect(local.expected.size).toBe(0);
    // Used, the place holds a message in flight: then nothing is dropped.
    local.expected.set(dead, 7);
    table.handedUsed(port);
    local.prune(table, true);
    expect(local.expected.size).toBe(1);
  });

  it('a freed place is handed to one waiting node, nodes in turn; none waiting costs no wake', () => {
    const sab = PortTable.create(3);
    const rung: NodeId[] = [];
    const [zero, one, two] = [0, 1, 2].map((node) => new PortTable(sab, node as NodeId, (to) => rung.push(to)));
    const port = zero!.allocate(PortKind.PORT)!;
    const slot = portSlot(port);
    zero!.setQlimit(port, 1);
    expect(zero!.reserve(port)).toBe('reserved');
    zero!.unreserve(port);
    expect([rung, zero!.msgcount(port)]).toEqual([[], 0]);
    expect(zero!.reserve(port)).toBe('reserved');
    one!.setBlocked(slot, true);
    two!.setBlocked(slot, true);
    // The place stays taken: it is node 1's now, and a sender coming later finds the queue full.
    zero!.unreserve(port);
    expect([rung, zero!.msgcount(port), zero!.reserve(port)]).toEqual([[1], 1, 'full']);
    expect(one!.takeHanded(slot)).toBe(1);
    zero!.unreserve(port);
    expect(rung).toEqual([1, 2]);
    // A dead node's flags go, the places handed to it come back, and the nodes still waiting look again.
    rung.length = 0;
    expect(zero!.dropBlocked(node1 as NodeId)).toEqual([]);
    expect(rung).toEqual([2]);
    expect(zero!.dropBlocked(2 as NodeId)).toEqual([port]);
    expect(rung).toEqual([2]);
    zero!.unreserve(port);
    expect(zero!.msgcount(port)).toBe(0);
    // A node that stops waiting takes the places handed to it meanwhile, to give them back.
    expect(zero!.reserve(port)).toBe('reserved');
    one!.setBlocked(slot, true);
    zero!.unreserve(port);
    expect(one!.setBlocked(slot, false)).toBe(1);
  });
});

/** Node kernels in one realm; `callNode` answers from the kernel called, `post` is recorded. */
function nodes(count: number, callNode?: NodeLinks['callNode']) {
  const refTables = Array.from({ length: count }, () => new SharedArrayBuffer(REF_TABLE_BYTES));
  const portTable = PortTable.create(count);
  const kernels: NodeKernel[] = [];
  const posted: Array<[NodeId, NodeToNode]> = [];
  const links: NodeLinks = {
    post: (node, message) => { posted.push([node, message]); },
    callNode: callNode ?? (async (node, method, args) =>
      (kernels[node]![method] as (...routineArgs: unknown[]) => { kr: number })(...args)),
  };
  for (let node = 0; node < count; node++) {
    kernels.push(new NodeKernel({ node: node as NodeId, nodes: count, pageSize: 4096, refTables, portTable }, links));
  }
  const ledgers = [Ledger.create(0, Infinity).ref, Ledger.create(1, Infinity).ref] as unknown as TaskLedgers;
  return { kernels, posted, portTable, ledgers, references: new ObjectReferences(refTables) };
}

describe('a full port table', () => {
  it('answers KERN_RESOURCE_SHORTAGE to bootstrap, mach_port_allocate and task creation on every node, releasing the captured image', () => {
    const { kernels, posted, portTable, ledgers } = nodes(2);
    const parent = kernels[0]!.taskBootstrap([0, 0], ledgers).task!;
    const { address } = kernels[0]!.vmAllocate(parent, 0, 4096, true);
    kernels[0]!.vmInherit(parent, address, 4096, VM_INHERIT_COPY);
    const image = kernels[0]!.taskFork(parent, 'create', true, node1, null).image!;
    const filler = fill(new PortTable(portTable, node1));
    const pagers = kernels.map((kernel) => kernel.pagerInfo());
    const regions = kernels[0]!.vmRegions(parent);

    expect(kernels[1]!.taskBootstrap([0, 0], ledgers)).toEqual({ kr: KERN_RESOURCE_SHORTAGE });
    expect(kernels[0]!.portAllocate(parent, MACH_PORT_RIGHT_RECEIVE)).toMatchObject({ kr: KERN_RESOURCE_SHORTAGE });
    expect(kernels[0]!.portAllocate(parent, MACH_PORT_RIGHT_PORT_SET)).toMatchObject({ kr: KERN_RESOURCE_SHORTAGE });
    // Same node: the COPY region's private copy is made, then freed again.
    expect(kernels[0]!.taskFork(parent, 'create', true, node0, null)).toMatchObject({ kr: KERN_RESOURCE_SHORTAGE });
    // Other node: the image captured before the table filled is released, its copy freed.
    expect(kernels[1]!.taskAdopt(image, [])).toMatchObject({ kr: KERN_RESOURCE_SHORTAGE });
    for (const [node, message] of posted.splice(0)) if (message.op === 'release') kernels[node]!.pagerRelease(message.objects);
    expect(kernels[0]!.pagerInfo()).toEqual({ ...pagers[0], objects: pagers[0]!.objects - 1, bytes: pagers[0]!.bytes - 4096 });
    expect(kernels[1]!.pagerInfo()).toEqual(pagers[1]);
    expect(kernels[0]!.vmRegions(parent)).toEqual(regions);

    // One port freed anywhere, and task creation works again.
    new PortTable(portTable, node1).kill(filler[0]!);
    expect(kernels[0]!.taskFork(parent, 'create', true, node0, null)).toMatchObject({ kr: KERN_SUCCESS });
  });
});

describe('building a child whose buffers must be fetched', () => {
  const owned = [{ home: 0, slot: 5, generation: 1 }, { home: 2, slot: 7, generation: 1 }] as const;

  /** An image for node 1 naming (not carrying) one object homed at node 0 and one at node 2. */
  function namedImage(ledgers: TaskLedgers, references: ObjectReferences) {
    const writer = new TaskImageWriter(() => true);
    owned.forEach((object, index) => {
      references.initialize(object as unknown as MemoryObjectName, 1);
      writer.entry({ start: 4096 * (index + 1), end: 4096 * (index + 2), offset: 0, protection: 3, maxProtection: 7, inheritance: 1 },
        { ...object, home: object.home as NodeId, sab: new SharedArrayBuffer(4096) });
    });
    return writer.finish([0, 0], ledgers, { special: [], registered: [null, null, null] });
  }

  it('asks every home at once', async () => {
    const asked: Array<{ node: NodeId; answer: (reply: { kr: number; buffers: SharedArrayBuffer[] }) => void }> = [];
    const { kernels, ledgers, references } = nodes(3, (node) =>
      new Promise((answer) => asked.push({ node, answer })));
    const adopting = kernels[1]!.taskAdopt(namedImage(ledgers, references), []);
    await Promise.resolve();
    expect(asked.map(({ node }) => node).sort()).toEqual([0, 2]);
    for (const { answer } of asked) answer({ kr: KERN_SUCCESS, buffers: [new SharedArrayBuffer(4096)] });
    const { kr, child } = await adopting;
    expect(kr).toBe(KERN_SUCCESS);
    expect(kernels[1]!.vmRegions(child as TaskId).regions).toHaveLength(2);
  });

  it('drops the image references once when a home cannot answer: KERN_NODE_DOWN, the freed objects sent home once, no throw', async () => {
    const { kernels, posted, ledgers, references } = nodes(3, async (node) =>
      node === 2 ? { kr: KERN_NODE_DOWN } : { kr: KERN_SUCCESS, buffers: [new SharedArrayBuffer(4096)] } as { kr: number });
    const reply = await kernels[1]!.taskAdopt(namedImage(ledgers, references), []);
    expect(reply.kr).toBe(KERN_NODE_DOWN);
    expect(reply.child).toBeUndefined();
    for (const object of owned) expect(references.count(object as unknown as MemoryObjectName)).toBe(0);
    const sent = posted.flatMap(([node, message]) => message.op === 'release' ? message.objects.map((object) => [node, object.home, object.slot]) : []);
    expect(sent.sort()).toEqual([[0, 0, 5], [2, 2, 7]]);
  });
});

describe('a full port table in a running kernel', () => {
  it('answers KERN_RESOURCE_SHORTAGE through both faces and changes nothing; freeing ports makes room again', async () => {
    const kernel = await bootKernel();
    const parent = await kernel.bootstrapTask.create();
    await parent.allocate(kernel.pageSize);
    const filler = await kernel.bootstrapTask.create({ inheritMemory: false });
    const filled = await filler.execute(fixture('death-fill-ports.mjs'), 'fillPortTable') as { kr: number; count: number };
    expect(filled.kr).toBe(KERN_RESOURCE_SHORTAGE);
    expect(filled.count).toBeGreaterThan(PORT_SLOTS - 100);
    const before = await snapshot(parent);
    const names = await kernel.mach.mach_port_names(parent);
    const pagers = await kernel.pagerInfo();

    expect(await kernel.mach.mach_port_allocate(parent, MACH_PORT_RIGHT_RECEIVE)).toMatchObject({ kr: KERN_RESOURCE_SHORTAGE });
    await expect(parent.allocatePort()).rejects.toMatchObject({ name: 'KernError', code: krName(KERN_RESOURCE_SHORTAGE) });
    expect(await kernel.mach.task_create(parent, null, 0, true)).toEqual({ kr: KERN_RESOURCE_SHORTAGE });
    expect(await kernel.mach.norma_task_create(parent, true, 1)).toEqual({ kr: KERN_RESOURCE_SHORTAGE });
    await expect(parent.clone(1)).rejects.toMatchObject({ name: 'KernError', kr: KERN_RESOURCE_SHORTAGE });
    await expect(parent.create()).rejects.toMatchObject({ name: 'KernError', kr: KERN_RESOURCE_SHORTAGE });
    expect(await snapshot(parent)).toEqual(before);
    expect(await kernel.mach.mach_port_names(parent)).toEqual(names);
    expect(await kernel.pagerInfo()).toEqual(pagers);

    await filler.terminate();
    expect((await parent.createOn(1)).node).toBe(1);
  });
});

describe('shutdown', () => {
  it('called again while the first runs resolves only once the nodes are gone', async () => {
    const kernel = await bootKernel();
    let firstDone = false;
    const first = kernel.shutdown().then(() => { firstDone = true; });
    await kernel.shutdown();
    expect(firstDone).toBe(true);
    await first;
    expect(await kernel.mach.task_info(kernel.bootstrapTask)).toEqual({ kr: KERN_NODE_DOWN });
  });
});
