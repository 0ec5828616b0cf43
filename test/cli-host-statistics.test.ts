/**
 * host_statistics (kernel.statistics(), kernel.mach.host_statistics): what the stress runs'
 * teardown-clean invariant reads, counted from what each node holds.
 */
import { describe, expect, it } from 'vitest';
import { KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_MSG_TYPE_MAKE_SEND, MACH_PORT_RIGHT_PORT_SET } from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

describe('host_statistics', () => {
  it('counts the tasks, threads, ports, port sets, regions and memory a node holds, and is back at its figures once they are gone', async () => {
    const kernel = await bootKernel();
    const before = await kernel.statistics();
    const task = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    const address = await task.allocate(2 * kernel.pageSize);
    await task.allocatePort();
    await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const now = (await kernel.statistics())[1]!;
    expect(now).toMatchObject({
      node: 1, tasks: before[1]!.tasks + 1, ports: before[1]!.ports + 1, portSets: before[1]!.portSets + 1,
      regions: before[1]!.regions + 1, memoryObjects: before[1]!.memoryObjects + 1, bytes: before[1]!.bytes + 2 * kernel.pageSize,
    });
    expect(now.kernelPorts).toBeGreaterThan(before[1]!.kernelPorts);
    expect(address).toBeGreaterThan(0);
    await task.terminate();
    // The IPC counters only grow; every holding is back where it was.
    const holdings = (all: Awaited<ReturnType<typeof kernel.statistics>>) => all.map(({ ipc: _ipc, ...rest }) => rest);
    expect(holdings(await kernel.statistics())).toEqual(holdings(before));
  });

  it('answers per node on kernel.mach, KERN_INVALID_ARGUMENT for no such node, and a crashed node as down', async () => {
    const kernel = await bootKernel();
    const { kr, statistics } = await kernel.mach.host_statistics(0);
    expect(kr).toBe(KERN_SUCCESS);
    expect(statistics).toMatchObject({ node: 0, tasks: 1, threads: 0 });
    expect(await kernel.mach.host_statistics(2)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await kernel.mach.host_statistics(0.5)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await kernel.crashNode(1);
    expect((await kernel.statistics())[1]).toMatchObject({ node: 1, down: true, tasks: 0 });
  });

  it('counts threads while they live', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    const port = await task.allocatePort();
    const thread = await task.spawn(fixture('threads-basic.mjs'), 'receiveOn', port);
    expect((await kernel.statistics())[1]!.threads).toBe(1);
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 1 });
    await thread.join();
    expect((await kernel.statistics())[1]!.threads).toBe(0);
    await task.terminate();
  });
});
