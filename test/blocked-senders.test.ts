/**
 * Senders blocked on a full queue (issue 10): they wait in line on their node, one is woken per
 * freed place, a place a woken or leaving sender does not use goes to the next, and a raised
 * limit or a death wakes them all. Across nodes the wake comes through the doorbell.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_NODE_DOWN, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_SEND,
  MACH_PORT_LIMITS_INFO, MACH_PORT_RIGHT_RECEIVE, MACH_SEND_INVALID_DEST, MACH_SEND_TIMED_OUT,
} from '../src/shared/constants.js';
import type { NodeId, TaskId } from '../src/shared/types.js';
import type { Clock } from '../src/actors/ipc/clock.js';
import { NodeIpc } from '../src/actors/ipc/ipc-node.js';
import type { IpcHost } from '../src/actors/ipc/ipc-types.js';
import type { OolMemory } from '../src/actors/ipc/mach-msg.js';
import { PortTable } from '../src/actors/ipc/port-table.js';
import { TaskIpc } from '../src/actors/ipc/space.js';
import { bootKernel, fixture } from './helpers.js';

/** A clock whose timers fire only when told. */
class ManualClock implements Clock {
  readonly #timers = new Map<number, () => void>();
  #next = 1;
  setTimeout(callback: () => void): number {
    this.#timers.set(this.#next, callback);
    return this.#next++;
  }
  clearTimeout(handle: unknown): void { this.#timers.delete(handle as number); }
  fireAll(): void {
    const due = [...this.#timers.values()];
    this.#timers.clear();
    for (const callback of due) callback();
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(qlimit: number) {
  const clock = new ManualClock();
  const host = { post() {}, releaseObject() {}, holdRegions() {}, portDied() {} } as unknown as IpcHost;
  const ipc = new NodeIpc(0 as NodeId, new PortTable(PortTable.create(), 0 as NodeId), host, clock);
  const task = new TaskIpc(ipc, 1024 as TaskId, {} as OolMemory, null);
  const { name } = task.allocate(MACH_PORT_RIGHT_RECEIVE);
  const port = task.space.lookup(name as never)!.port!;
  ipc.table.setQlimit(port, qlimit);
  const send = (id: number, timeoutMs = Infinity) =>
    Promise.resolve(task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id }, timeoutMs));
  const receiveId = async () => (await task.receive(name, 0)).msg?.id;
  return { clock, ipc, task, name, port, send, receiveId };
}

describe('blocked senders, one node', () => {
  it('wait in line and are woken one per freed place, first come first served', async () => {
    const { ipc, send, receiveId } = setup(2);
    expect(await send(0)).toBe(MACH_MSG_SUCCESS);
    expect(await send(1)).toBe(MACH_MSG_SUCCESS);
    const waiting = Array.from({ length: 50 }, (_, i) => send(100 + i));
    await settle();
    expect(ipc.blocked.size).toBe(50);
    expect(ipc.counters.sendersBlocked).toBe(50);
    const received: number[] = [];
    for (let i = 0; i < 52; i++) {
      received.push((await receiveId())!);
      await settle();
      // A dequeue wakes one sender, not every one.
      expect(ipc.counters.sendersWoken).toBe(Math.min(i + 1, 50));
    }
    expect(received).toEqual([0, 1, ...Array.from({ length: 50 }, (_, i) => 100 + i)]);
    expect(await Promise.all(waiting)).toEqual(Array(50).fill(MACH_MSG_SUCCESS));
    expect(ipc.blocked.size).toBe(0);
  });

  it('a freed place is handed to the first blocked sender: a sender coming later cannot take it first', async () => {
    const { ipc, port, send, receiveId } = setup(1);
    expect(await send(0)).toBe(MACH_MSG_SUCCESS);
    const blocked = send(1);
    await settle();
    expect(await receiveId()).toBe(0);
    // The place is sender 1's before it has run again: the queue still counts it taken.
    expect(ipc.table.msgcount(port)).toBe(1);
    expect(await send(2, 0)).toBe(MACH_SEND_TIMED_OUT);
    expect(await blocked).toBe(MACH_MSG_SUCCESS);
    expect(await receiveId()).toBe(1);
    expect(ipc.table.msgcount(port)).toBe(0);
  });

  it('a sender whose deadline passes leaves the line; the next place goes to the one behind it', async () => {
    const { clock, ipc, port, send, receiveId } = setup(1);
    expect(await send(0)).toBe(MACH_MSG_SUCCESS);
    const leaving = send(1, 10);
    const staying = send(2);
    await settle();
    clock.fireAll();
    expect(await leaving).toBe(MACH_SEND_TIMED_OUT);
    expect(ipc.blocked.size).toBe(1);
    expect(await receiveId()).toBe(0);
    expect(await staying).toBe(MACH_MSG_SUCCESS);
    expect(await receiveId()).toBe(2);
    expect(ipc.table.msgcount(port)).toBe(0);
  });

  it('a woken sender whose right went meanwhile fails and hands the place on', async () => {
    const { ipc, task, name, port, send, receiveId } = setup(1);
    const other = new TaskIpc(ipc, 2048 as TaskId, {} as OolMemory, null);
    const { right, type } = task.extractRight(name, MACH_MSG_TYPE_MAKE_SEND);
    expect(other.insertRight(0x3001, right!, type!).kr).toBe(KERN_SUCCESS);
    expect(await send(0)).toBe(MACH_MSG_SUCCESS);
    const doomed = Promise.resolve(other.send({ remotePort: 0x3001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 }, Infinity));
    const behind = send(2);
    await settle();
    expect(ipc.blocked.size).toBe(2);
    expect(other.deallocate(0x3001).kr).toBe(KERN_SUCCESS);
    expect(await receiveId()).toBe(0);
    expect(await doomed).toBe(MACH_SEND_INVALID_DEST);
    expect(await behind).toBe(MACH_MSG_SUCCESS);
    expect(await receiveId()).toBe(2);
    expect(ipc.table.msgcount(port)).toBe(0);
  });

  it('a raised queue limit lets every sender that now fits through; a dead port fails the rest', async () => {
    const { ipc, task, name, send } = setup(1);
    expect(await send(0)).toBe(MACH_MSG_SUCCESS);
    const first = [send(1), send(2), send(3)];
    await settle();
    expect(task.setAttributes(name, MACH_PORT_LIMITS_INFO, { queue_limit: 4 }).kr).toBe(KERN_SUCCESS);
    expect(await Promise.all(first)).toEqual([MACH_MSG_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_SUCCESS]);
    const last = [send(4), send(5)];
    await settle();
    expect(ipc.blocked.size).toBe(2);
    expect(task.destroy(name).kr).toBe(KERN_SUCCESS);
    expect(await Promise.all(last)).toEqual([MACH_SEND_INVALID_DEST, MACH_SEND_INVALID_DEST]);
    expect(ipc.blocked.size).toBe(0);
  });
});

const IPC = fixture('ipc.mjs');
const SEND = 0x1001;

/** Polls the nodes' statistics (each try a kernel round trip) until each node has blocked a sender `least[node]` times. */
async function untilBlocked(kernel: Awaited<ReturnType<typeof bootKernel>>, least: readonly number[]): Promise<void> {
  for (let tries = 0; tries < 20_000; tries++) {
    const statistics = await kernel.statistics();
    if (least.every((count, node) => (statistics[node]!.ipc?.sendersBlocked ?? 0) >= count)) return;
  }
  throw new Error('the senders never blocked');
}

describe('blocked senders across nodes', () => {
  it('a node that dies with senders in line loses its turn: the freed place goes to a survivor', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const holder = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const service = await holder.allocatePort();
    await holder.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    const [survivor, doomed] = await Promise.all([0, 1].map(async (node) => {
      const sender = await kernel.bootstrapTask.createOn(node, { inheritMemory: false });
      await sender.insertRight(SEND, await holder.extractRight(service, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
      return sender;
    }));
    const receive = async (count: number) => holder.execute(IPC, 'receiveNumbered', service, count, 10_000) as
      Promise<{ kr: number; got: [number, number][] }>;
    // The survivor fills the queue and waits; one receive hands node 0 a place, so node 1 is next in turn.
    const survivorSends = survivor!.execute(IPC, 'sendNumbered', SEND, 0, 3);
    await untilBlocked(kernel, [1, 0]);
    expect(await receive(1)).toMatchObject({ kr: 0, got: [[0, 1]] });
    const doomedSends = doomed!.execute(IPC, 'sendNumbered', SEND, 1, 1).then(() => 'sent', (error: { kr?: number }) => error.kr);
    await untilBlocked(kernel, [2, 1]);
    await kernel.crashNode(1);
    expect(await doomedSends).toBe(KERN_NODE_DOWN);
    // Node 1's turn went with it: the places the receives free are the survivor's.
    expect(await receive(2)).toMatchObject({ kr: 0, got: [[0, 2], [0, 3]] });
    expect(await survivorSends).toEqual({ node: 0, sent: 3, kr: 0 });
  });

  it('a task terminated while its send waits leaves the line: the freed place goes to the next sender', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const holder = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const service = await holder.allocatePort();
    await holder.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    const [first, second] = await Promise.all([0, 1].map(async () => {
      const sender = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
      await sender.insertRight(SEND, await holder.extractRight(service, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
      return sender;
    }));
    // The first sender's first message fills the queue; its second waits first in line, the
    // second sender's behind it.
    const firstSends = first!.execute(IPC, 'sendNumbered', SEND, 0, 2).catch(() => 'terminated');
    await untilBlocked(kernel, [1]);
    const secondSends = second!.execute(IPC, 'sendNumbered', SEND, 1, 1);
    await untilBlocked(kernel, [2]);
    await first!.terminate();
    await firstSends;
    const batch = await holder.execute(IPC, 'receiveNumbered', service, 2, 10_000) as { kr: number; got: [number, number][] };
    expect(batch).toMatchObject({ kr: 0, got: [[0, 1], [1, 1]] });
    expect(await secondSends).toEqual({ node: 0, sent: 1, kr: 0 });
    expect((await kernel.statistics())[0]!.ipc).toMatchObject({ sendersBlocked: 2 });
  });

  it('senders on both nodes at a queue limit of 1 all get through, each in its order, none lost or doubled', async () => {
    const kernel = await bootKernel({ nodes: 2 });
    const holder = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    const service = await holder.allocatePort();
    await holder.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    const senders = await Promise.all([0, 0, 0, 1, 1].map(async (node) => {
      const sender = await kernel.bootstrapTask.createOn(node, { inheritMemory: false });
      await sender.insertRight(SEND, await holder.extractRight(service, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
      return sender;
    }));
    const count = 200;
    const sent = Promise.all(senders.map((sender, id) => sender.execute(IPC, 'sendNumbered', SEND, id, count)));
    const batch = await holder.execute(IPC, 'receiveNumbered', service, senders.length * count, 10_000) as
      { kr: number; got: [number, number][] };
    expect(batch.kr).toBe(0);
    expect(await sent).toEqual(senders.map((sender) => ({ node: sender.node, sent: count, kr: 0 })));
    for (let sender = 0; sender < senders.length; sender++) {
      expect(batch.got.filter(([from]) => from === sender).map(([, n]) => n)).toEqual(Array.from({ length: count }, (_, n) => n + 1));
    }
  });
});
