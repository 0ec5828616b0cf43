/**
 * The gateway (issue 12 item 2): two kernels in this test process act as cluster processes A (0)
 * and B (1), joined by a MemoryNetwork, a Gateway on each. Tasks in one process hold rights to
 * ports of the other through proxies; messages, rights, out-of-line memory, back-pressure,
 * dead names, no-senders, receive rights moving and a process going down cross as Mach's do.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_RECEIVE,
  MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_SEND_ONCE,
  MACH_PORT_RECEIVE_STATUS, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_SEND_MSG, MACH_SEND_TIMED_OUT, MACH_SEND_TIMEOUT, type Kernel, type MachMsgSend, type Task,
} from 'norma-rt';
import { Gateway, type GatewayStatistics } from '../src/cluster/gateway.js';
import type { RightInTransit } from '../src/shared/message.js';
import { MemoryNetwork } from './cluster/memory-link.js';
import { bootKernel } from './helpers.js';

/** One cluster process of the test: its kernel, its gateway, its index. */
interface Proc { readonly kernel: Kernel; readonly gateway: Gateway; readonly proc: number }

const started: Gateway[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((gateway) => gateway.stop()));
});

/** Processes A (0) and B (1) with a gateway each; `processes` > 2 leaves the others to the test. */
async function cluster(processes = 2) {
  const network = new MemoryNetwork(processes);
  const [ka, kb] = await Promise.all([bootKernel(), bootKernel()]);
  const [ga, gb] = await Promise.all([Gateway.start(ka as never, network.link(0)), Gateway.start(kb as never, network.link(1))]);
  started.push(ga, gb);
  return { network, a: { kernel: ka, gateway: ga, proc: 0 }, b: { kernel: kb, gateway: gb, proc: 1 } };
}

const MOVE_TYPE = { 'send': MACH_MSG_TYPE_MOVE_SEND, 'send-once': MACH_MSG_TYPE_MOVE_SEND_ONCE, 'receive': MACH_MSG_TYPE_MOVE_RECEIVE };

/**
 * Gives `task` of process `to` the right `disposition` makes from `port` of `owner` (process
 * `from`), under `name`: extract, exportRight, importRight, insert: what the cluster does when a
 * right crosses outside a message.
 */
async function giveAcross(from: Proc, owner: Task, port: number, disposition: number, to: Proc, task: Task, name: number) {
  const extracted = await from.kernel.request(owner.node, 'portExtractRight', owner.id, port, disposition);
  expect(extracted.kr).toBe(KERN_SUCCESS);
  const wire = await from.gateway.exportRight(extracted.right as RightInTransit, to.proc);
  const right = await to.gateway.importRight(wire);
  expect(right.kind).not.toBe('dead');
  const type = MOVE_TYPE[right.kind as keyof typeof MOVE_TYPE];
  expect(await to.kernel.request(task.node, 'portInsertRight', task.id, name, right as never, type)).toMatchObject({ kr: KERN_SUCCESS });
}

/** A server task on node 1 of `server` with a port, and a client task in `client` holding a send right to it as SEND. */
async function across(server: Proc, client: Proc) {
  const receiver = await server.kernel.bootstrapTask.createOn(server.kernel.nodes - 1);
  const port = await receiver.allocatePort();
  const sender = await client.kernel.bootstrapTask.createOn(client.kernel.nodes - 1);
  await giveAcross(server, receiver, port, MACH_MSG_TYPE_MAKE_SEND, client, sender, SEND);
  return { receiver, port, sender };
}

const SEND = 0x1001;
/** The names a gateway task holds for nobody: its own task port, its port set, notify and intake ports. */
const IDLE_NAMES = 4;

function to(name: number, fields: Partial<MachMsgSend> = {}): MachMsgSend {
  return { remotePort: name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ...fields };
}

const receive = (task: Task, name: number) => task.receive(name, { timeout: 10_000 });

/** Waits until both gateways have nothing in flight, then returns their statistics. */
async function settled(a: Proc, b: Proc): Promise<[GatewayStatistics, GatewayStatistics]> {
  await vi.waitFor(() => {
    expect(a.gateway.statistics().acksOutstanding).toBe(0);
    expect(b.gateway.statistics().acksOutstanding).toBe(0);
  });
  return [a.gateway.statistics(), b.gateway.statistics()];
}

async function queued(task: Task, port: number): Promise<number> {
  return ((await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)) as { mps_msgcount: number }).mps_msgcount;
}

describe('messages across processes', () => {
  it('delivers a one-way message and an RPC whose send-once reply right crosses back', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    await sender.send(to(SEND, { id: 1, body: Uint8Array.of(1, 2, 3) }));
    expect(await receive(receiver, port)).toMatchObject({ id: 1, body: Uint8Array.of(1, 2, 3), localPort: port, remotePort: 0 });

    const reply = await sender.allocatePort();
    await sender.send(to(SEND, { id: 2, localPort: reply, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE }));
    const request = await receive(receiver, port);
    expect(request).toMatchObject({ id: 2, remoteType: MACH_MSG_TYPE_PORT_SEND_ONCE });
    await receiver.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: 3, body: Uint8Array.of(9) });
    expect(await receive(sender, reply)).toMatchObject({ id: 3, body: Uint8Array.of(9), localPort: reply });

    const [sa, sb] = await settled(a, b);
    expect(sa).toMatchObject({ exports: 1, oneShots: 0, delivered: 2, forwarded: 1, dropped: {} });
    expect(sb).toMatchObject({ proxies: 1, sendOnceExports: 0, delivered: 1, forwarded: 2, dropped: {} });
    // Each gateway holds the export or the proxy, and nothing left of the reply.
    await vi.waitFor(async () => expect([await a.gateway.names(), await b.gateway.names()]).toEqual([IDLE_NAMES + 1, IDLE_NAMES + 1]));
  });

  it('carries send rights both ways; a right going back to its home process arrives as the real port', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const mine = await sender.allocatePort();
    await sender.send(to(SEND, { id: 1, ports: [{ name: mine, disposition: MACH_MSG_TYPE_MAKE_SEND }] }));
    const got = await receive(receiver, port);
    expect(got.ports).toEqual([{ name: expect.any(Number), type: MACH_MSG_TYPE_PORT_SEND }]);
    const proxy = got.ports[0]!.name;
    expect(await receiver.portType(proxy)).toBe(MACH_PORT_TYPE_SEND);

    // A's task answers through its proxy, passing B's own right back and a right to A's port.
    await receiver.send(to(proxy, { id: 2, ports: [
      { name: proxy, disposition: MACH_MSG_TYPE_COPY_SEND }, { name: port, disposition: MACH_MSG_TYPE_MAKE_SEND },
    ] }));
    const back = await receive(sender, mine);
    expect(back.id).toBe(2);
    // Its own port comes home as the name of its receive right, not a proxy of a proxy.
    expect(back.ports[0]).toEqual({ name: mine, type: MACH_MSG_TYPE_PORT_SEND });
    // The right to A's port joins the proxy B already has (one proxy per port).
    expect(back.ports[1]).toEqual({ name: SEND, type: MACH_MSG_TYPE_PORT_SEND });
    expect(await sender.getRefs(SEND, 0)).toBe(2);

    // And from B again to A: A's own port arrives as the receive right's name.
    await sender.send(to(SEND, { id: 3, ports: [{ name: SEND, disposition: MACH_MSG_TYPE_COPY_SEND }] }));
    expect((await receive(receiver, port)).ports[0]).toEqual({ name: port, type: MACH_MSG_TYPE_PORT_SEND });
    expect(await receiver.portType(port)).toBe(MACH_PORT_TYPE_RECEIVE | MACH_PORT_TYPE_SEND);

    const [sa, sb] = await settled(a, b);
    expect(sa).toMatchObject({ proxies: 1, exports: 1, dropped: {} });
    expect(sb).toMatchObject({ proxies: 1, exports: 1, dropped: {} });
  });

  it('carries out-of-line memory as bytes into the receiver\'s map', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const page = b.kernel.pageSize;
    const address = await sender.allocate(2 * page);
    const bytes = Uint8Array.from({ length: page + 100 }, (_, index) => (index * 7) & 0xff);
    await sender.write(address, bytes);
    await sender.send(to(SEND, { id: 4, ool: [{ address, size: bytes.length }, { address: address + page, size: 10 }] }));
    const got = await receive(receiver, port);
    expect(got.ool.map((region) => region.size)).toEqual([bytes.length, 10]);
    expect(await receiver.read(got.ool[0]!.address, bytes.length)).toEqual(bytes);
    expect(await receiver.read(got.ool[1]!.address, 10)).toEqual(bytes.subarray(page, page + 10));
    // The gateways' copies went with the message: nothing left mapped in either gateway's way.
    const [sa, sb] = await settled(a, b);
    expect(sa.delivered).toBe(1);
    expect(sb.forwarded).toBe(1);
    expect(sb.sharedOolCopied).toBe(0);
  });

  it('carries out-of-line memory sent with share: true as a copy, and counts it (sharedOolCopied)', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const page = b.kernel.pageSize;
    const address = await sender.allocate(page);
    await sender.write(address, Uint8Array.of(1, 2, 3));
    await sender.send(to(SEND, { id: 5, ool: [{ address, size: page, share: true }] }));
    const got = await receive(receiver, port);
    expect(await receiver.read(got.ool[0]!.address, 3)).toEqual(Uint8Array.of(1, 2, 3));
    // A copy: the receiver's write does not reach the sender.
    await receiver.write(got.ool[0]!.address, Uint8Array.of(9));
    expect(await sender.read(address, 1)).toEqual(Uint8Array.of(1));
    const [, sb] = await settled(a, b);
    expect(sb.sharedOolCopied).toBe(1);
  });

  it('keeps each sender\'s order with 3 senders in two processes x 200 messages: no loss, no duplicate', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender: remote1 } = await across(a, b);
    const remote2 = await b.kernel.bootstrapTask.createOn(0);
    await giveAcross(a, receiver, port, MACH_MSG_TYPE_MAKE_SEND, b, remote2, SEND);
    const local = await a.kernel.bootstrapTask.createOn(0);
    await local.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const COUNT = 200;
    const senders = [remote1, remote2, local];
    const sending = senders.map(async (task, who) => {
      for (let seq = 0; seq < COUNT; seq++) await task.send(to(SEND, { id: who, body: new Uint8Array(Uint32Array.of(seq).buffer) }));
    });
    const next = [0, 0, 0];
    for (let index = 0; index < COUNT * senders.length; index++) {
      const msg = await receive(receiver, port);
      const seq = new DataView(msg.body.buffer, msg.body.byteOffset).getUint32(0, true);
      // In order per sender, and so neither lost nor duplicated.
      expect(seq).toBe(next[msg.id]);
      next[msg.id]!++;
    }
    await Promise.all(sending);
    expect(next).toEqual([COUNT, COUNT, COUNT]);
    expect(await queued(receiver, port)).toBe(0);
    const [sa, sb] = await settled(a, b);
    expect(sa.delivered).toBe(2 * COUNT);
    expect(sb.forwarded).toBe(2 * COUNT);
  });
});

describe('send-once and third-process rights', () => {
  it('gives the client a send-once notification when the server destroys the reply right unused', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const reply = await sender.allocatePort();
    await sender.send(to(SEND, { id: 1, localPort: reply, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE }));
    const request = await receive(receiver, port);
    expect(a.gateway.statistics().oneShots).toBe(1);
    await receiver.deallocatePort(request.remotePort);
    expect(await receive(sender, reply)).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: reply, remotePort: 0 });
    const [sa, sb] = await settled(a, b);
    expect(sa.oneShots).toBe(0);
    expect(sb.sendOnceExports).toBe(0);
  });

  it('passes a send right on to a third process: its home grants it, and no-senders waits for every holder', async () => {
    const network = new MemoryNetwork(3);
    const kernels = await Promise.all([bootKernel({ nodes: 1 }), bootKernel({ nodes: 1 }), bootKernel({ nodes: 1 })]);
    const gateways = await Promise.all(kernels.map((kernel, proc) => Gateway.start(kernel as never, network.link(proc))));
    started.push(...gateways);
    const [a, b, c] = kernels.map((kernel, proc): Proc => ({ kernel, gateway: gateways[proc]!, proc }));
    const { receiver, port, sender } = await across(a!, b!);
    const { receiver: third, port: inbox, sender: relay } = await across(c!, b!);
    const RELAYED = 0x2001;
    await giveAcross(a!, receiver, port, MACH_MSG_TYPE_MAKE_SEND, b!, relay, RELAYED);
    const notify = await receiver.allocatePort();
    await receiver.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);

    await relay.send(to(SEND, { id: 1, ports: [{ name: RELAYED, disposition: MACH_MSG_TYPE_COPY_SEND }] }));
    const carried = (await receive(third, inbox)).ports[0]!;
    expect(carried.type).toBe(MACH_MSG_TYPE_PORT_SEND);
    await third.send(to(carried.name, { id: 2 }));
    expect((await receive(receiver, port)).id).toBe(2);
    // B's two rights and the one granted for C.
    expect(a!.gateway.statistics()).toMatchObject({ exports: 1, grants: 3, dropped: {} });

    await sender.deallocatePort(SEND);
    await relay.deallocatePort(RELAYED);
    await vi.waitFor(() => expect(a!.gateway.statistics().grants).toBe(1));
    expect(await queued(receiver, notify)).toBe(0);
    await third.deallocatePort(carried.name);
    expect((await receive(receiver, notify)).id).toBe(MACH_NOTIFY_NO_SENDERS);
    await vi.waitFor(() => expect(a!.gateway.statistics()).toMatchObject({ exports: 0, grants: 0 }));
    // C still has its proxy for B's inbox; A holds nothing for anyone.
    expect(await a!.gateway.names()).toBe(IDLE_NAMES);
  });
});

describe('the queue limit across processes', () => {
  it('blocks a remote sender once the real queue, its credits and its proxy are full: MACH_SEND_TIMEOUT times out', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const filler = await a.kernel.bootstrapTask.createOn(0);
    await filler.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    for (let index = 0; index < 5; index++) await filler.send(to(SEND, { id: 100 + index }));
    expect(await queued(receiver, port)).toBe(5);

    let sent = 0;
    for (;;) {
      const { kr } = await b.kernel.mach.mach_msg(sender, to(SEND, { id: sent }), MACH_SEND_MSG | MACH_SEND_TIMEOUT, 0, 0, 0, 200);
      if (kr === MACH_SEND_TIMED_OUT) break;
      expect(kr).toBe(MACH_MSG_SUCCESS);
      sent++;
      expect(sent).toBeLessThanOrEqual(10);
    }
    // The window (5 forwarded, unacknowledged) and the proxy's own queue limit (5).
    expect(sent).toBe(10);
    expect(b.gateway.statistics().acksOutstanding).toBe(5);

    const ids: number[] = [];
    for (let index = 0; index < 15; index++) ids.push((await receive(receiver, port)).id);
    expect(ids).toEqual([100, 101, 102, 103, 104, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    await settled(a, b);
    // Credit back: the sender is not blocked any more.
    await b.kernel.mach.mach_msg(sender, to(SEND, { id: 10 }), MACH_SEND_MSG | MACH_SEND_TIMEOUT, 0, 0, 0, 5000);
    expect((await receive(receiver, port)).id).toBe(10);
  });
});

describe('notifications across processes', () => {
  it('turns remote send rights into dead names when the receive right is destroyed, with a dead-name notification', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const notify = await sender.allocatePort();
    await sender.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    await receiver.destroyPort(port);
    const notification = await receive(sender, notify);
    expect(notification.id).toBe(MACH_NOTIFY_DEAD_NAME);
    expect(new DataView(notification.body.buffer, notification.body.byteOffset).getUint32(0, true)).toBe(SEND);
    expect(await sender.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    await vi.waitFor(() => {
      expect(a.gateway.statistics()).toMatchObject({ exports: 0 });
      expect(b.gateway.statistics()).toMatchObject({ proxies: 0 });
    });
    await vi.waitFor(async () => expect([await a.gateway.names(), await b.gateway.names()]).toEqual([IDLE_NAMES, IDLE_NAMES]));
  });

  it('fires no-senders on the real port once the remote process drops its send right', async () => {
    const { a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    const notify = await receiver.allocatePort();
    await receiver.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    await sender.send(to(SEND, { id: 1 }));
    await sender.deallocatePort(SEND);
    // The message sent before the right went was forwarded first; while queued, it holds the
    // send right it was sent with (as in Mach), so no-senders comes once it is received.
    expect((await receive(receiver, port)).id).toBe(1);
    const notification = await receive(receiver, notify);
    expect(notification.id).toBe(MACH_NOTIFY_NO_SENDERS);
    await vi.waitFor(() => {
      expect(a.gateway.statistics()).toMatchObject({ exports: 0, grants: 0 });
      expect(b.gateway.statistics()).toMatchObject({ proxies: 0 });
    });
    await vi.waitFor(async () => expect([await a.gateway.names(), await b.gateway.names()]).toEqual([IDLE_NAMES, IDLE_NAMES]));
  });
});

describe('rights racing their release', () => {
  it('loses no right that crosses while the last one to the same port is being released', async () => {
    const { a, b } = await cluster();
    const { receiver: inbox, port: box, sender: homeTask } = await across(b, a);
    const port = await homeTask.allocatePort();
    const notify = await homeTask.allocatePort();
    let last = 0;
    for (let round = 0; round < 40; round++) {
      await homeTask.send(to(SEND, { id: round, ports: [{ name: port, disposition: MACH_MSG_TYPE_MAKE_SEND }] }));
      const got = await receive(inbox, box);
      expect(got.id).toBe(round);
      last = got.ports[0]!.name;
      expect(await inbox.portType(last)).toBe(MACH_PORT_TYPE_SEND);
      // Dropped at once: the proxy's no-senders check runs while the next right is on its way.
      if (round < 39) await inbox.deallocatePort(last);
    }
    await homeTask.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    await inbox.send(to(last, { id: 100 }));
    expect((await receive(homeTask, port)).id).toBe(100);
    expect(await queued(homeTask, notify)).toBe(0);
    await inbox.deallocatePort(last);
    expect((await receive(homeTask, notify)).id).toBe(MACH_NOTIFY_NO_SENDERS);
    await vi.waitFor(() => {
      expect(a.gateway.statistics()).toMatchObject({ exports: 0, grants: 0, dropped: {} });
      expect(b.gateway.statistics()).toMatchObject({ proxies: 0, dropped: {} });
    });
  });
});

describe('receive rights across processes', () => {
  it('moves a receive right with messages queued on it: they follow in order, and later senders still reach it', async () => {
    const { a, b } = await cluster();
    // B's task holds a port A's task can send to.
    const { receiver: newHome, port: inbox, sender: mover } = await across(b, a);
    const moving = await mover.allocatePort();
    const local = await a.kernel.bootstrapTask.createOn(0);
    await local.insertRight(SEND, await mover.extractRight(moving, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    for (let id = 1; id <= 5; id++) await local.send(to(SEND, { id }));

    await mover.send(to(SEND, { id: 99, ports: [{ name: moving, disposition: MACH_MSG_TYPE_MOVE_RECEIVE }] }));
    const carried = await receive(newHome, inbox);
    expect(carried.ports).toEqual([{ name: expect.any(Number), type: MACH_MSG_TYPE_PORT_RECEIVE }]);
    const moved = carried.ports[0]!.name;
    expect(await newHome.portType(moved)).toBe(MACH_PORT_TYPE_RECEIVE);

    const later = (async () => { for (let id = 6; id <= 12; id++) await local.send(to(SEND, { id })); })();
    const ids: number[] = [];
    for (let index = 0; index < 12; index++) ids.push((await receive(newHome, moved)).id);
    await later;
    expect(ids).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    const [sa, sb] = await settled(a, b);
    expect(sa).toMatchObject({ forwarders: 1, pendingReceives: 0, dropped: {} });
    // The inbox's export for A's task, and the moved port's, kept for A's forwarder.
    expect(sb).toMatchObject({ exports: 2, dropped: {} });

    // The new receiver destroys it: the old port dies too, and local senders see a dead name.
    await newHome.destroyPort(moved);
    await vi.waitFor(async () => expect(await local.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME));
    await vi.waitFor(() => expect(a.gateway.statistics().forwarders).toBe(0));
  });
});

describe('a process going down', () => {
  it('kills the proxies for its ports (dead names, notifications) and releases the rights held for it', async () => {
    const { network, a, b } = await cluster();
    const { receiver, port, sender } = await across(a, b);
    // And the other way: A's task holds a right to a port of B's task.
    const remotePort = await sender.allocatePort();
    await giveAcross(b, sender, remotePort, MACH_MSG_TYPE_MAKE_SEND, a, receiver, SEND);
    const notify = await receiver.allocatePort();
    await receiver.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    await receiver.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    expect(a.gateway.statistics()).toMatchObject({ proxies: 1, exports: 1 });

    network.crash(1);
    const ids = [(await receive(receiver, notify)).id, (await receive(receiver, notify)).id];
    expect(ids.sort()).toEqual([MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_DEAD_NAME]);
    expect(await receiver.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(a.gateway.statistics()).toMatchObject({ proxies: 0, exports: 0, acksOutstanding: 0 });
  });
});

describe('bad input from the link', () => {
  it('refuses and counts malformed frames, unknown exports, exports not granted to the sender and forged rights', async () => {
    const { network, a, b } = await cluster(3);
    const { receiver, port, sender } = await across(a, b);
    const exported = await a.gateway.exportRight(
      (await a.kernel.request(receiver.node, 'portExtractRight', receiver.id, port, MACH_MSG_TYPE_MAKE_SEND)).right as RightInTransit, 1);
    expect(exported).toMatchObject({ kind: 'send', home: 0 });
    const exp = (exported as { export: number }).export;
    const rogue = network.link(2);
    const msg = { id: 7, body: new Uint8Array(0), reply: null, ports: [], ool: [] };
    for (const payload of [null, 'deliver', { op: 'deliver' }, { op: 'nope', export: exp },
      { op: 'deliver', export: exp, once: false, msg: { ...msg, body: 'not bytes' } }]) {
      rogue.post(0, 'gateway', payload);
    }
    // A port id learned from traffic is not a send right: process 2 was never granted this export.
    rogue.post(0, 'gateway', { op: 'deliver', export: exp, once: false, msg });
    rogue.post(0, 'gateway', { op: 'deliver', export: 0x7fff01, once: false, msg });
    rogue.post(0, 'gateway', { op: 'release', export: exp, count: 5, kind: 'send' });
    // Nor may it pass that right on in a message of its own.
    network.link(1).post(0, 'gateway', { op: 'deliver', export: exp, once: false,
      msg: { ...msg, ports: [{ kind: 'send', home: 0, export: exp + 0x100 }] } });
    expect(await rogue.request(0, 'gateway', { op: 'grant', export: exp, to: 1 })).toEqual({ kr: expect.any(Number) });

    await vi.waitFor(() => expect(a.gateway.statistics().dropped).toEqual({
      'malformed': 5, 'not-granted': 1, 'unknown-export': 1, 'release-over': 1, 'forged-right': 1, 'grant-refused': 1,
    }));
    expect(await queued(receiver, port)).toBe(0);
    // The real traffic still flows, and the export still counts B's two rights.
    await sender.send(to(SEND, { id: 8 }));
    expect((await receive(receiver, port)).id).toBe(8);
    expect(a.gateway.statistics().exports).toBe(1);
    await a.gateway.stop();
    expect(a.gateway.statistics().loopEnded).toBe(KERN_SUCCESS);
  });
});

describe('location hints', () => {
  /** Processes A (0), B (1) and C (2), a one-node kernel and a gateway each. */
  async function three() {
    const network = new MemoryNetwork(3);
    const kernels = await Promise.all([bootKernel({ nodes: 1 }), bootKernel({ nodes: 1 }), bootKernel({ nodes: 1 })]);
    const gateways = await Promise.all(kernels.map((kernel, proc) => Gateway.start(kernel as never, network.link(proc))));
    started.push(...gateways);
    const [a, b, c] = kernels.map((kernel, proc): Proc => ({ kernel, gateway: gateways[proc]!, proc }));
    return { network, a: a!, b: b!, c: c! };
  }

  /** Sends ids from .. to - 1 to `name`, one after another. */
  async function stream(task: Task, name: number, from: number, to: number) {
    for (let id = from; id < to; id++) await task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id });
  }

  /** Receives ids from .. to - 1 on `port`, in that order (so none lost, none twice). */
  async function expectIds(task: Task, port: number, from: number, to: number) {
    for (let id = from; id < to; id++) expect((await receive(task, port)).id).toBe(id);
  }

  /** Moves the receive right `port` of `owner` through `owner`'s SEND (a proxy) to the task behind it; its new name there. */
  async function moveThrough(owner: Task, port: number, inboxTask: Task, inbox: number): Promise<number> {
    await owner.send(to(SEND, { id: -1, ports: [{ name: port, disposition: MACH_MSG_TYPE_MOVE_RECEIVE }] }));
    const carried = await receive(inboxTask, inbox);
    expect(carried.ports).toEqual([{ name: expect.any(Number), type: MACH_MSG_TYPE_PORT_RECEIVE }]);
    return carried.ports[0]!.name;
  }

  it('moves a receive right A -> B while C streams: in order, then C sends to B directly and outlives A', async () => {
    const { network, a, b, c } = await three();
    const { receiver: newHome, port: inbox, sender: mover } = await across(b, a);
    const port = await mover.allocatePort();
    const streamer = await c.kernel.bootstrapTask.createOn(0);
    await giveAcross(a, mover, port, MACH_MSG_TYPE_MAKE_SEND, c, streamer, SEND);

    const COUNT = 120;
    const sending = stream(streamer, SEND, 0, COUNT);
    const moved = await moveThrough(mover, port, newHome, inbox);
    await expectIds(newHome, moved, 0, COUNT);
    await sending;
    // Traffic through A's forwarder brings C its hint; C switches once its fence reached B.
    await Promise.all([stream(streamer, SEND, COUNT, 2 * COUNT), expectIds(newHome, moved, COUNT, 2 * COUNT)]);
    await vi.waitFor(() => expect(c.gateway.statistics().hintsFollowed).toBe(1));
    await settled(a, c);
    // Nobody sends through A's forwarder any more: it closes, and forwards nothing new.
    await vi.waitFor(() => expect(a.gateway.statistics()).toMatchObject({ forwarders: 0, exports: 0 }));
    const forwardedByA = a.gateway.statistics().forwarded;
    await Promise.all([stream(streamer, SEND, 2 * COUNT, 2 * COUNT + 40), expectIds(newHome, moved, 2 * COUNT, 2 * COUNT + 40)]);
    expect(a.gateway.statistics().forwarded).toBe(forwardedByA);
    expect(a.gateway.statistics().dropped).toEqual({});
    expect(c.gateway.statistics()).toMatchObject({ proxies: 1, dropped: {} });

    // C no longer depends on A.
    network.crash(0);
    await Promise.all([stream(streamer, SEND, 2 * COUNT + 40, 2 * COUNT + 80), expectIds(newHome, moved, 2 * COUNT + 40, 2 * COUNT + 80)]);
    expect(await streamer.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);
    await settled(b, c);
    expect(b.gateway.statistics().dropped).toEqual({});
    expect(c.gateway.statistics()).toMatchObject({ proxies: 1, hintsFollowed: 1, dropped: {} });

    // And dies with B, as any proxy does with its port's home.
    network.crash(1);
    await vi.waitFor(async () => expect(await streamer.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME));
  });

  it('moves a receive right A -> B -> A while C streams: in order, and the chain collapses hint by hint', async () => {
    const { a, b, c } = await three();
    const { receiver: newHome, port: inbox, sender: mover } = await across(b, a);
    const { receiver: oldHome, port: backInbox, sender: backMover } = await across(a, b);
    const port = await mover.allocatePort();
    const streamer = await c.kernel.bootstrapTask.createOn(0);
    await giveAcross(a, mover, port, MACH_MSG_TYPE_MAKE_SEND, c, streamer, SEND);

    const COUNT = 200;
    const sending = stream(streamer, SEND, 0, COUNT);
    const there = await moveThrough(mover, port, newHome, inbox);
    await expectIds(newHome, there, 0, 60);
    // Back to A, with what is queued there and what is still coming.
    const RIGHT = 0x3001;
    await backMover.insertRight(RIGHT, await newHome.extractRight(there, MACH_MSG_TYPE_MOVE_RECEIVE), MACH_MSG_TYPE_MOVE_RECEIVE);
    const back = await moveThrough(backMover, RIGHT, oldHome, backInbox);
    await expectIds(oldHome, back, 60, COUNT);
    await sending;
    await Promise.all([stream(streamer, SEND, COUNT, 2 * COUNT), expectIds(oldHome, back, COUNT, 2 * COUNT)]);
    // A's old port pointed to B, B's to A's new one: one hint each, and C sends to A's new port.
    await vi.waitFor(() => expect(c.gateway.statistics().hintsFollowed).toBe(2));
    await settled(a, c);
    await vi.waitFor(() => expect(b.gateway.statistics().forwarders).toBe(0));
    const [forwardedByA, forwardedByB] = [a.gateway.statistics().forwarded, b.gateway.statistics().forwarded];
    await Promise.all([stream(streamer, SEND, 2 * COUNT, 2 * COUNT + 40), expectIds(oldHome, back, 2 * COUNT, 2 * COUNT + 40)]);
    expect([a.gateway.statistics().forwarded, b.gateway.statistics().forwarded]).toEqual([forwardedByA, forwardedByB]);
    for (const proc of [a, b, c]) expect(proc.gateway.statistics().dropped).toEqual({});
    expect(await queued(oldHome, back)).toBe(0);
  });
});
