/**
 * Task creation and memory across cluster processes (issue 12 items 1 and 3): two kernels in
 * this test process act as cluster processes 0 and 1, joined by a MemoryNetwork; a RemoteTasks
 * on each. The parent lives in process 0, the child in process 1.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_PROTECTION_FAILURE, KERN_SUCCESS, MACH_MSG_TYPE_MAKE_SEND,
  MACH_PORT_NULL, TASK_BOOTSTRAP_PORT, VM_INHERIT_COPY, VM_INHERIT_NONE, VM_INHERIT_SHARE, VM_PROT_ALL,
  VM_PROT_NONE, VM_PROT_READ, VM_PROT_WRITE, type Kernel, type RegionInfo, type Task, type TaskId,
} from 'norma-rt';
import { RemoteTasks, type RightTranslator } from '../src/cluster/remote-task.js';
import type { MemoryReply } from '../src/cluster/remote-memory.js';
import type { RightInTransit } from '../src/shared/message.js';
import type { WireRight } from '../src/cluster/wire.js';
import { MemoryNetwork } from './cluster/memory-link.js';
import { bootKernel, byteAt } from './helpers.js';

/** Until the gateway: every right crosses as dead; what was exported is recorded. */
class DeadRights implements RightTranslator {
  readonly exported: RightInTransit['kind'][] = [];
  onImport: () => void = () => {};
  async exportRight(right: RightInTransit): Promise<WireRight> {
    this.exported.push(right.kind);
    return { kind: 'dead' };
  }
  async importRight(): Promise<RightInTransit> {
    this.onImport();
    return { kind: 'dead' };
  }
}

const CHILD_NODE = 1;

async function twoProcesses() {
  const [k0, k1] = await Promise.all([bootKernel(), bootKernel()]);
  const network = new MemoryNetwork(2);
  const rights = [new DeadRights(), new DeadRights()] as const;
  const r0 = new RemoteTasks(k0 as never, network.link(0), rights[0]);
  const r1 = new RemoteTasks(k1 as never, network.link(1), rights[1]);
  /** A routine on the child's node of process 1, as the cluster runs it: routed when about remote memory. */
  const onChild = (method: string, ...args: unknown[]): Promise<MemoryReply> =>
    r1.route(CHILD_NODE, method, args) ??
      (k1.request as (node: number, method: string, ...rest: unknown[]) => Promise<MemoryReply>)(CHILD_NODE, method, ...args);
  const fork = (parent: Task, mode: 'create' | 'clone' | 'teleport', inheritMemory = true, from: RemoteTasks = r0) =>
    from.forkAcross({ proc: 0, node: parent.node, task: parent.id }, mode, inheritMemory, { proc: 1, node: CHILD_NODE });
  return { k0, k1, network, rights, r0, r1, onChild, fork };
}

/** A parent on node 1 of process 0: share (0x11), copy (0x22), none (0x33), and a read-only copy region (0x44). */
async function parentWithRegions(kernel: Kernel) {
  const page = kernel.pageSize;
  const parent = await kernel.bootstrapTask.createOn(1);
  const [share, copy, none, readOnly] = [await parent.allocate(page), await parent.allocate(page),
    await parent.allocate(page), await parent.allocate(2 * page)];
  await parent.inherit(share, page, VM_INHERIT_SHARE);
  await parent.inherit(none, page, VM_INHERIT_NONE);
  for (const [address, size, fill] of [[share, page, 0x11], [copy, page, 0x22], [none, page, 0x33], [readOnly, 2 * page, 0x44]] as const) {
    await parent.write(address, new Uint8Array(size).fill(fill));
  }
  await parent.protect(readOnly, 2 * page, VM_PROT_READ | VM_PROT_WRITE, { setMaximum: true });
  await parent.protect(readOnly, 2 * page, VM_PROT_READ);
  return { parent, page, share, copy, none, readOnly };
}

async function taskCount(kernel: Kernel): Promise<number> {
  return (await kernel.statistics()).reduce((sum, node) => sum + node.tasks, 0);
}

const attributes = ({ address, size, protection, maxProtection, inheritance }: RegionInfo) =>
  ({ address, size, protection, maxProtection, inheritance });

describe('norma_task_create across processes', () => {
  it('copies COPY regions byte-exact, shares SHARE ones through the home process, leaves NONE out, keeps attributes', async () => {
    const { k0, r0, r1, onChild, fork } = await twoProcesses();
    const { parent, page, share, copy, none, readOnly } = await parentWithRegions(k0);
    const parentRegions = await parent.regions();

    const made = await fork(parent, 'create');
    expect(made.kr).toBe(KERN_SUCCESS);
    const child = made.child!;

    const regions = (await onChild('vmRegions', child)).regions!;
    expect(regions.map(attributes)).toEqual(parentRegions.filter((region) => region.address !== none).map(attributes));
    const shared = regions.find((region) => region.address === share)!;
    expect(shared.object).toBe(`p0/${(await parent.region(share)).object}`);
    expect(shared.shared).toBe(true);
    expect(regions.filter((region) => region.object.startsWith('p0/'))).toHaveLength(1);
    expect((await onChild('vmRegion', child, share)).region).toEqual(shared);
    expect((await onChild('vmRead', child, none, 1)).kr).not.toBe(KERN_SUCCESS);

    expect((await onChild('vmRead', child, copy, page)).data).toEqual(new Uint8Array(page).fill(0x22));
    expect((await onChild('vmRead', child, readOnly, 2 * page)).data).toEqual(new Uint8Array(2 * page).fill(0x44));
    expect((await onChild('vmRead', child, share, page)).data).toEqual(new Uint8Array(page).fill(0x11));
    // COPY: independent both ways.
    expect((await onChild('vmWrite', child, copy, Uint8Array.of(0xaa))).kr).toBe(KERN_SUCCESS);
    await parent.write(copy + 1, Uint8Array.of(0xbb));
    expect(await byteAt(parent, copy)).toBe(0x22);
    expect((await onChild('vmRead', child, copy, 2)).data).toEqual(Uint8Array.of(0xaa, 0x22));
    // The read-only region stays read-only in the child.
    expect((await onChild('vmWrite', child, readOnly, Uint8Array.of(1))).kr).toBe(KERN_PROTECTION_FAILURE);
    // SHARE: one memory object, seen at once both ways.
    expect((await onChild('vmWrite', child, share, Uint8Array.of(0x5a))).kr).toBe(KERN_SUCCESS);
    expect((await parent.view(share, page))[0]).toBe(0x5a);
    (await parent.view(share, page))[1] = 0x6b;
    expect((await onChild('vmRead', child, share, 3)).data).toEqual(Uint8Array.of(0x5a, 0x6b, 0x11));

    expect(r1.statistics()).toMatchObject({ remoteRanges: 1, bytesCopied: 3 * page, holders: 0 });
    expect(r0.statistics()).toMatchObject({ holders: 1, remoteRanges: 0 });
    // The parent is untouched: same regions, attributes and inheritance.
    expect((await parent.regions()).map(attributes)).toEqual(parentRegions.map(attributes));
  });

  it('without inheritMemory the child has an empty map and nothing is held', async () => {
    const { k0, r0, r1, onChild, fork } = await twoProcesses();
    const { parent } = await parentWithRegions(k0);
    const before = await taskCount(k0);
    const made = await fork(parent, 'create', false, r1);
    expect(made.kr).toBe(KERN_SUCCESS);
    expect((await onChild('vmRegions', made.child!)).regions).toEqual([]);
    expect(r0.statistics().holders).toBe(0);
    expect(r1.statistics()).toMatchObject({ remoteRanges: 0, bytesCopied: 0 });
    expect(await taskCount(k0)).toBe(before);
  });

  it('vm_copy crosses the local/remote boundary both ways', async () => {
    const { k0, onChild, fork } = await twoProcesses();
    const { parent, page, share, copy } = await parentWithRegions(k0);
    const child = (await fork(parent, 'create')).child!;
    // local (copy) -> remote (share): the parent sees it.
    expect((await onChild('vmCopy', child, copy, 16, share)).kr).toBe(KERN_SUCCESS);
    expect([...(await parent.read(share, 17))]).toEqual([...new Array(16).fill(0x22), 0x11]);
    // remote (share) -> local (copy), and a range spanning both (share's last bytes, copy's first).
    await parent.write(share + page - 4, Uint8Array.of(1, 2, 3, 4));
    expect((await onChild('vmCopy', child, share + page - 4, 4, copy + 100)).kr).toBe(KERN_SUCCESS);
    expect((await onChild('vmRead', child, copy + 100, 4)).data).toEqual(Uint8Array.of(1, 2, 3, 4));
    expect(share + page).toBe(copy);
    const spanning = await onChild('vmRead', child, share + page - 2, 4);
    expect(spanning.data).toEqual(Uint8Array.of(3, 4, 0x22, 0x22));
    expect((await onChild('vmWrite', child, share + page - 1, Uint8Array.of(9, 9))).kr).toBe(KERN_SUCCESS);
    expect(await byteAt(parent, share + page - 1)).toBe(9);
    expect(await byteAt(parent, copy)).toBe(0x22);
  });

  it('refuses a raw view of a remote range, with the code and why; the placeholder itself cannot be viewed', async () => {
    const { k0, k1, onChild, fork } = await twoProcesses();
    const { parent, share, copy } = await parentWithRegions(k0);
    const child = (await fork(parent, 'create')).child!;
    const refused = await onChild('vmView', child, share + 8, 16);
    expect(refused.kr).toBe(KERN_PROTECTION_FAILURE);
    expect(refused.why).toBe(`memory at 0x${(share + 8).toString(16)} is homed in process 0; a raw view of another process's ` +
      'memory needs a coherent pager (XMM), which norma does not have yet');
    expect((await k1.request(CHILD_NODE as never, 'vmView', child, share, 16)).kr).toBe(KERN_PROTECTION_FAILURE);
    expect((await onChild('vmView', child, copy, 16)).kr).toBe(KERN_SUCCESS);
  });

  it('vm_protect, vm_inherit and vm_deallocate of a remote range are the child\'s own; deallocating it releases the holder', async () => {
    const { k0, r0, r1, onChild, fork } = await twoProcesses();
    const { parent, page, share } = await parentWithRegions(k0);
    const before = await taskCount(k0);
    const child = (await fork(parent, 'create')).child!;
    expect(await taskCount(k0)).toBe(before + 1);
    expect((await onChild('vmProtect', child, share, page, false, VM_PROT_READ)).kr).toBe(KERN_SUCCESS);
    expect((await onChild('vmWrite', child, share, Uint8Array.of(1))).kr).toBe(KERN_PROTECTION_FAILURE);
    expect((await onChild('vmProtect', child, share, page, false, VM_PROT_ALL)).kr).toBe(KERN_SUCCESS);
    expect((await onChild('vmInherit', child, share, page, VM_INHERIT_COPY)).kr).toBe(KERN_SUCCESS);
    expect((await onChild('vmRegion', child, share)).region).toMatchObject({ protection: VM_PROT_ALL, inheritance: VM_INHERIT_COPY });
    // The parent's own attributes did not move.
    expect(await parent.region(share)).toMatchObject({ protection: VM_PROT_READ | VM_PROT_WRITE, inheritance: VM_INHERIT_SHARE });
    await parent.write(share, Uint8Array.of(7));
    expect((await onChild('vmRead', child, share, 1)).data).toEqual(Uint8Array.of(7));

    expect((await onChild('vmDeallocate', child, share, page)).kr).toBe(KERN_SUCCESS);
    expect(r1.statistics().remoteRanges).toBe(0);
    expect(r0.statistics().holders).toBe(0);
    expect(await taskCount(k0)).toBe(before);
    expect(await byteAt(parent, share)).toBe(7);
  });

  it('rejects a bad parent with nothing created in either process', async () => {
    const { k0, k1, r0, r1, fork } = await twoProcesses();
    const { parent } = await parentWithRegions(k0);
    const counts = [await taskCount(k0), await taskCount(k1)];
    const statistics = [r0.statistics(), r1.statistics()];
    const dead = await k0.bootstrapTask.createOn(1);
    await dead.terminate();
    for (const bad of [dead, { ...parent, id: 0x7fff_0001 as TaskId }, { ...parent, node: 0 }] as Task[]) {
      expect((await fork(bad, 'create')).kr).toBe(KERN_INVALID_ARGUMENT);
    }
    expect((await r0.forkAcross({ proc: 0, node: 1, task: parent.id }, 'create', true, { proc: 1, node: 9 })).kr)
      .toBe(KERN_INVALID_ARGUMENT);
    expect((await r0.forkAcross({ proc: 0, node: 1, task: parent.id }, 'create', true, { proc: 0, node: 0 })).kr)
      .toBe(KERN_INVALID_ARGUMENT);
    expect([await taskCount(k0), await taskCount(k1)]).toEqual(counts);
    expect([r0.statistics(), r1.statistics()]).toEqual(statistics);
  });
});

describe('norma_task_clone and norma_task_teleport across processes', () => {
  it('clone shares every region whatever its inheritance, each keeping the parent\'s inheritance', async () => {
    const { k0, r1, onChild, fork } = await twoProcesses();
    const { parent, page, share, copy, none, readOnly } = await parentWithRegions(k0);
    const child = (await fork(parent, 'clone')).child!;
    const regions = (await onChild('vmRegions', child)).regions!;
    expect(regions.map(attributes)).toEqual((await parent.regions()).map(attributes));
    expect(regions.every((region) => region.object.startsWith('p0/'))).toBe(true);
    expect(r1.statistics()).toMatchObject({ remoteRanges: 4, bytesCopied: 0 });
    for (const address of [copy, none]) {
      await parent.write(address, Uint8Array.of(0x77));
      expect((await onChild('vmRead', child, address, 2)).data).toEqual(Uint8Array.of(0x77, address === copy ? 0x22 : 0x33));
      expect((await onChild('vmWrite', child, address + 1, Uint8Array.of(0x78))).kr).toBe(KERN_SUCCESS);
      expect(await byteAt(parent, address + 1)).toBe(0x78);
    }
    expect((await onChild('vmRead', child, readOnly + page, 1)).data).toEqual(Uint8Array.of(0x44));
    expect((await onChild('vmWrite', child, readOnly, Uint8Array.of(1))).kr).toBe(KERN_PROTECTION_FAILURE);
    expect((await onChild('vmRead', child, share, 1)).data).toEqual(Uint8Array.of(0x11));
  });

  it('teleport terminates the parent once the child exists: private memory copied, memory shared with others stays homed', async () => {
    const { k0, r1, onChild, fork } = await twoProcesses();
    const { parent, page, share, copy } = await parentWithRegions(k0);
    // A sibling sharing `share` with the parent: that memory stays homed in process 0; the other 4 pages are copied.
    const sibling = await parent.create();
    const made = await fork(parent, 'teleport');
    expect(made.kr).toBe(KERN_SUCCESS);
    await parent.exited();
    expect((await k0.request(1 as never, 'taskInfo', parent.id)).kr).toBe(KERN_INVALID_ARGUMENT);
    const child = made.child!;
    const regions = (await onChild('vmRegions', child)).regions!;
    expect(regions.filter((region) => region.object.startsWith('p0/')).map((region) => region.address)).toEqual([share]);
    expect((await onChild('vmRead', child, copy, page)).data).toEqual(new Uint8Array(page).fill(0x22));
    expect(r1.statistics()).toMatchObject({ remoteRanges: 1, bytesCopied: 4 * page });
    await sibling.write(share, Uint8Array.of(0x99));
    expect((await onChild('vmRead', child, share, 2)).data).toEqual(Uint8Array.of(0x99, 0x11));
  });

  it('a child process that dies during the build leaves a teleport\'s parent running, unchanged, and nothing held', async () => {
    const { k0, network, rights, r0, fork } = await twoProcesses();
    const { parent } = await parentWithRegions(k0);
    const before = { tasks: await taskCount(k0), regions: await parent.regions() };
    rights[1].onImport = () => network.crash(1);
    expect((await fork(parent, 'teleport')).kr).toBe(KERN_NODE_DOWN);
    expect((await parent.info()).suspendCount).toBe(0);
    expect(await parent.regions()).toEqual(before.regions);
    expect(await taskCount(k0)).toBe(before.tasks);
    expect(r0.statistics().holders).toBe(0);
    expect((await fork(parent, 'create')).kr).toBe(KERN_NODE_DOWN);
  });
});

describe('remote memory lifetime', () => {
  it('the child\'s end releases its holder in the home process', async () => {
    const { k0, k1, r0, r1, fork } = await twoProcesses();
    const { parent } = await parentWithRegions(k0);
    const before = await taskCount(k0);
    const child = (await fork(parent, 'clone')).child!;
    expect(await taskCount(k0)).toBe(before + 1);
    expect(r0.statistics().holders).toBe(1);
    expect((await k1.request(CHILD_NODE as never, 'taskTerminate', child)).kr).toBe(KERN_SUCCESS);
    await r1.released(child);
    expect(r0.statistics().holders).toBe(0);
    expect(r1.statistics().remoteRanges).toBe(0);
    expect(await taskCount(k0)).toBe(before);
  });

  it('a task_create from a clone in the child\'s process shares its SHARE ranges through the same holder and copies its COPY ones', async () => {
    const { k0, r0, r1, onChild, fork } = await twoProcesses();
    const { parent, page, share, copy, none, readOnly } = await parentWithRegions(k0);
    const before = await taskCount(k0);
    const cloned = (await fork(parent, 'clone')).child!;
    const made = await onChild('taskFork', cloned, 'create', true, CHILD_NODE, null);
    expect(made.kr).toBe(KERN_SUCCESS);
    const grandchild = made.child!;
    const regions = (await onChild('vmRegions', grandchild)).regions!;
    expect(regions.map((region) => region.address)).toEqual([share, copy, readOnly]);
    expect(regions.map(attributes)).toEqual((await parent.regions()).filter((region) => region.address !== none).map(attributes));
    expect(regions.map((region) => region.object.startsWith('p0/'))).toEqual([true, false, false]);
    await parent.write(share, Uint8Array.of(0x66));
    expect((await onChild('vmRead', grandchild, share, 1)).data).toEqual(Uint8Array.of(0x66));
    await parent.write(copy, Uint8Array.of(0x77));
    expect((await onChild('vmRead', grandchild, copy, 2)).data).toEqual(Uint8Array.of(0x22, 0x22));
    expect((await onChild('vmRead', grandchild, readOnly + page, 1)).data).toEqual(Uint8Array.of(0x44));
    expect((await onChild('vmWrite', grandchild, readOnly, Uint8Array.of(1))).kr).toBe(KERN_PROTECTION_FAILURE);
    // One holder serves both; it goes only with the last of them, and a routed task_terminate answers after that.
    expect((await onChild('taskTerminate', cloned)).kr).toBe(KERN_SUCCESS);
    expect(r0.statistics().holders).toBe(1);
    expect((await onChild('vmRead', grandchild, share, 1)).data).toEqual(Uint8Array.of(0x66));
    expect((await onChild('taskTerminate', grandchild)).kr).toBe(KERN_SUCCESS);
    expect(r0.statistics().holders).toBe(0);
    expect(r1.statistics().remoteRanges).toBe(0);
    expect(await taskCount(k0)).toBe(before);
  });

  it('a home process that goes down: routed reads answer KERN_NODE_DOWN, local memory still reads', async () => {
    const { k0, network, onChild, fork } = await twoProcesses();
    const { parent, share, copy } = await parentWithRegions(k0);
    const child = (await fork(parent, 'create')).child!;
    network.crash(0);
    expect((await onChild('vmRead', child, share, 4)).kr).toBe(KERN_NODE_DOWN);
    expect((await onChild('vmWrite', child, share, Uint8Array.of(1))).kr).toBe(KERN_NODE_DOWN);
    expect((await onChild('vmRead', child, copy, 1)).data).toEqual(Uint8Array.of(0x22));
    expect((await onChild('vmRegion', child, share)).region).toMatchObject({ address: share, object: 'p0/?' });
  });

  it('inherited ports travel through the translator; a dead one leaves the child\'s slot empty', async () => {
    const { k0, rights, onChild, fork } = await twoProcesses();
    const { parent } = await parentWithRegions(k0);
    const port = await parent.allocatePort();
    await parent.insertRight(port, port, MACH_MSG_TYPE_MAKE_SEND);
    await parent.setSpecialPort(TASK_BOOTSTRAP_PORT, port);
    await parent.registerPorts([port]);
    const child = (await fork(parent, 'create', false)).child!;
    expect(rights[0].exported).toEqual(['send', 'send']);
    expect((await onChild('taskGetSpecialPort', child, TASK_BOOTSTRAP_PORT)).kr).toBe(KERN_SUCCESS);
    expect(((await onChild('taskGetSpecialPort', child, TASK_BOOTSTRAP_PORT)) as unknown as { name: number }).name).toBe(MACH_PORT_NULL);
    expect(VM_PROT_NONE).toBe(0);
  });
});
