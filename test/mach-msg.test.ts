/**
 * mach_msg through real nodes: header destination and reply rights with every disposition,
 * inline data, port-right and out-of-line memory descriptors, send and receive timeouts, the
 * queue limit as back-pressure, port sets, and the send codes that mean "nothing happened".
 */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ADDRESS, KERN_INVALID_NAME, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND,
  MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE,
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_RECEIVE,
  MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_PORT_DEAD, MACH_PORT_LIMITS_INFO,
  MACH_PORT_NULL, MACH_PORT_RECEIVE_STATUS, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_PORT_SET,
  MACH_PORT_RIGHT_SEND, MACH_PORT_TYPE_RECEIVE,
  MACH_PORT_TYPE_SEND, MACH_PORT_TYPE_SEND_ONCE, MACH_RCV_IN_SET, MACH_RCV_INVALID_NAME, MACH_RCV_MSG,
  MACH_RCV_TIMED_OUT, MACH_RCV_TIMEOUT, MACH_SEND_INVALID_DATA, MACH_SEND_INVALID_DEST,
  MACH_SEND_INVALID_HEADER, MACH_SEND_INVALID_MEMORY, MACH_SEND_INVALID_REPLY,
  MACH_SEND_INVALID_RIGHT, MACH_SEND_INVALID_TYPE, MACH_SEND_MSG, MACH_SEND_TIMED_OUT,
  MACH_SEND_TIMEOUT, type Kernel, type MachMsgSend, type Task,
} from 'norma-rt';
import { bootKernel, fixture, itInOneProcess, rejectsWith, spaceState } from './helpers.js';

/** The name every sender here holds its send right under. */
const SEND = 0x1001;

/** A receiver with a receive right on `receiverNode` and a sender holding a send right (SEND) to it. */
async function pair(kernel: Kernel, senderNode: number, receiverNode: number) {
  const receiver = await kernel.bootstrapTask.createOn(receiverNode, { inheritMemory: false });
  const sender = await kernel.bootstrapTask.createOn(senderNode, { inheritMemory: false });
  const port = await receiver.allocatePort();
  await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
  return { sender, receiver, port };
}

function to(name: number, fields: Partial<MachMsgSend> = {}): MachMsgSend {
  return { remotePort: name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ...fields };
}

/** Receives one message within 5 s (a lost message fails quickly instead of hanging). */
async function receiveOne(task: Task, name: number) {
  return task.receive(name, { timeout: 5000 });
}

async function queued(task: Task, port: number): Promise<number> {
  return ((await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)) as { mps_msgcount: number }).mps_msgcount;
}

describe('mach_msg send and receive', () => {
  it.each([[0, 1], [1, 1]])('delivers id and inline body from node %i to node %i in order, stamping seqnos 0, 1, 2', async (from, at) => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, from, at);
    for (const id of [10, 11, 12]) {
      expect((await kernel.mach.mach_msg(sender, to(SEND, { id, body: Uint8Array.of(id, id + 1, id + 2) }), MACH_SEND_MSG)).kr)
        .toBe(MACH_MSG_SUCCESS);
    }
    for (const [seqno, id] of [[0, 10], [1, 11], [2, 12]] as const) {
      const reply = await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG, 0, 0, port, 0);
      expect(reply.kr).toBe(MACH_MSG_SUCCESS);
      expect(reply.msg).toMatchObject({
        id, seqno, localPort: port, remotePort: MACH_PORT_NULL, body: Uint8Array.of(id, id + 1, id + 2), ports: [], ool: [],
      });
    }
  });

  it('consumes the destination right by disposition: COPY_SEND keeps the urefs, MOVE_SEND takes one, MOVE_SEND_ONCE the name', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    await sender.modRefs(SEND, MACH_PORT_RIGHT_SEND, 1);
    await sender.send(to(SEND, { id: 1 }));
    expect(await sender.getRefs(SEND, MACH_PORT_RIGHT_SEND)).toBe(2);
    await sender.send(to(SEND, { id: 2, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND }));
    expect(await sender.getRefs(SEND, MACH_PORT_RIGHT_SEND)).toBe(1);
    await sender.send(to(SEND, { id: 3, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND }));
    await rejectsWith(sender.portType(SEND), KERN_INVALID_NAME);

    await sender.insertRight(0x2001, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    await sender.send(to(0x2001, { id: 4, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE }));
    await rejectsWith(sender.portType(0x2001), KERN_INVALID_NAME);
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push((await receiveOne(receiver, port)).id);
    // Send-once messages are not ordered against the others: compare as sets.
    expect(ids.sort()).toEqual([1, 2, 3, 4]);
  });

  it('sends to its own receive right with MAKE_SEND (the make-send count goes up) and MAKE_SEND_ONCE', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const port = await task.allocatePort();
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 1 });
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, id: 2 });
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_mscount: 1, mps_msgcount: 1 });
    const ids = [(await receiveOne(task, port)).id, (await receiveOne(task, port)).id];
    expect(ids.sort()).toEqual([1, 2]);
    // The message's send right went with its dequeue; the name holds the receive right only.
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_srights: false });
  });

  it.each([
    [MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE],
    [MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_MOVE_SEND],
  ])('carries a reply right (disposition %i, received as %i) that the server answers through across nodes', async (make, type, answer) => {
    const kernel = await bootKernel();
    const { sender: client, receiver: server, port } = await pair(kernel, 0, 1);
    const reply = await client.allocatePort();
    const request = await kernel.mach.mach_msg(client, to(SEND, { id: 5, localPort: reply, localDisposition: make }), MACH_SEND_MSG);
    expect(request.kr).toBe(MACH_MSG_SUCCESS);
    const got = await receiveOne(server, port);
    expect(got).toMatchObject({ id: 5, remoteType: type });
    expect(await server.portType(got.remotePort)).toBe(type === MACH_MSG_TYPE_PORT_SEND ? MACH_PORT_TYPE_SEND : MACH_PORT_TYPE_SEND_ONCE);
    await server.send({ remotePort: got.remotePort, remoteDisposition: answer, id: 6, body: Uint8Array.of(6) });
    // Either way the server's name is used up: the send-once right by the reply, the send right by MOVE_SEND.
    await rejectsWith(server.portType(got.remotePort), KERN_INVALID_NAME);
    expect(await receiveOne(client, reply)).toMatchObject({ id: 6, localPort: reply, body: Uint8Array.of(6) });
  });

  it('translates port-right descriptors into the receiver space: new names, an existing send name gaining a uref, dead names as MACH_PORT_DEAD', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    const mine = await sender.allocatePort();
    const once = await sender.allocatePort();
    const moved = await sender.allocatePort();
    const dead = await sender.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    await sender.insertRight(mine, mine, MACH_MSG_TYPE_MAKE_SEND);
    await sender.modRefs(mine, MACH_PORT_RIGHT_SEND, 1);
    // The receiver already holds a send right to `mine` under 0x3001.
    await receiver.insertRight(0x3001, await sender.extractRight(mine, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);

    await sender.send(to(SEND, {
      id: 9,
      ports: [
        { name: mine, disposition: MACH_MSG_TYPE_COPY_SEND },
        { name: mine, disposition: MACH_MSG_TYPE_MOVE_SEND },
        { name: once, disposition: MACH_MSG_TYPE_MAKE_SEND_ONCE },
        { name: moved, disposition: MACH_MSG_TYPE_MOVE_RECEIVE },
        { name: dead, disposition: MACH_MSG_TYPE_COPY_SEND },
        { name: once, disposition: MACH_MSG_TYPE_MAKE_SEND },
      ],
    }));
    expect(await sender.getRefs(mine, MACH_PORT_RIGHT_SEND)).toBe(1);
    await rejectsWith(sender.portType(moved), KERN_INVALID_NAME);

    const got = await receiveOne(receiver, port);
    expect(got.ports.map((right) => right.type)).toEqual([
      MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_MSG_TYPE_PORT_RECEIVE,
      MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND,
    ]);
    const [copy, move, sendOnce, receive, deadName, made] = got.ports.map((right) => right.name);
    expect(copy).toBe(0x3001);
    expect(move).toBe(0x3001);
    expect(await receiver.getRefs(0x3001, MACH_PORT_RIGHT_SEND)).toBe(3);
    expect(await receiver.portType(sendOnce!)).toBe(MACH_PORT_TYPE_SEND_ONCE);
    expect(await receiver.portType(receive!)).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(deadName).toBe(MACH_PORT_DEAD);
    expect(await receiver.portType(made!)).toBe(MACH_PORT_TYPE_SEND);
    expect(new Set([0x3001, sendOnce, receive, made, port]).size).toBe(5);

    // The rights work from their new names: the receiver answers on each, the sender gets them.
    await receiver.send(to(0x3001, { id: 21 }));
    await receiver.send({ remotePort: sendOnce!, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: 22 });
    await receiver.send(to(made!, { id: 23 }));
    expect((await receiveOne(sender, mine)).id).toBe(21);
    expect((await receiveOne(sender, once)).id).toBe(22);
    expect((await receiveOne(sender, once)).id).toBe(23);
    // The moved receive right now receives on node 1.
    await receiver.send({ remotePort: receive!, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 24 });
    expect((await receiveOne(receiver, receive!)).id).toBe(24);
  });

  for (const share of [false, true]) {
    (share ? itInOneProcess('out-of-line memory sent with share: true arrives as a copy in another process') : it)(
      `maps out-of-line memory into the receiver on another node (share ${share}): copied, or shared both ways`, async () => {
      const kernel = await bootKernel();
      const { sender, receiver, port } = await pair(kernel, 0, 1);
      const page = kernel.pageSize;
      const region = await sender.allocate(2 * page);
      const data = Uint8Array.from({ length: 2 * page }, (_, index) => index % 251);
      await sender.write(region, data);
      await sender.send(to(SEND, { id: 3, ool: [{ address: region, size: 2 * page, share }] }));

      const got = await receiveOne(receiver, port);
      expect(got.ool).toHaveLength(1);
      const { address, size } = got.ool[0]!;
      expect(size).toBe(2 * page);
      expect(await receiver.read(address, size)).toEqual(data);
      await receiver.write(address, Uint8Array.of(0xee));
      await sender.write(region + page, Uint8Array.of(0xdd));
      expect((await sender.read(region, 1))[0]).toBe(share ? 0xee : 0);
      expect((await receiver.read(address + page, 1))[0]).toBe(share ? 0xdd : page % 251);
    });
  }

  it('deallocates the sender range with deallocate: true, the data arriving intact', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    const region = await sender.allocate(kernel.pageSize);
    await sender.write(region, Uint8Array.of(1, 2, 3, 4));
    await sender.send(to(SEND, { ool: [{ address: region, size: 4, deallocate: true }] }));
    await rejectsWith(sender.read(region, 4), KERN_INVALID_ADDRESS);
    const got = await receiveOne(receiver, port);
    expect(await receiver.read(got.ool[0]!.address, 4)).toEqual(Uint8Array.of(1, 2, 3, 4));
  });
});

describe('mach_msg timeouts and the queue limit', () => {
  it('returns MACH_RCV_TIMED_OUT from an empty port after the timeout, and at once for 0', async () => {
    const kernel = await bootKernel();
    const { receiver, port } = await pair(kernel, 0, 1);
    expect(await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, port, 0)).toEqual({ kr: MACH_RCV_TIMED_OUT });
    const started = performance.now();
    expect(await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, port, 30)).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
    await rejectsWith(receiver.receive(port, { timeout: 1 }), MACH_RCV_TIMED_OUT);
  });

  itInOneProcess("a remote sender gets the credit window and its proxy's queue ahead of the port's queue limit")('with qlimit 5 and no receiver a 6th send times out with MACH_SEND_TIMEOUT; without, it completes once a receive frees a place; nothing is lost', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    expect(await receiver.portAttributes(port, MACH_PORT_LIMITS_INFO)).toEqual({ queue_limit: 5 });
    for (let id = 1; id <= 5; id++) await sender.send(to(SEND, { id }), { timeout: 0 });
    const before = await spaceState(sender);
    expect(await kernel.mach.mach_msg(sender, to(SEND, { id: 99 }), MACH_SEND_MSG | MACH_SEND_TIMEOUT, 0, 0, 0, 20))
      .toEqual({ kr: MACH_SEND_TIMED_OUT });
    await rejectsWith(sender.send(to(SEND, { id: 99 }), { timeout: 0 }), MACH_SEND_TIMED_OUT);
    expect(await spaceState(sender)).toEqual(before);
    expect(await queued(receiver, port)).toBe(5);

    let done = false;
    const sixth = sender.send(to(SEND, { id: 6 })).then(() => { done = true; });
    // Both nodes answer other calls meanwhile; the sixth is still waiting for a place.
    expect(await queued(receiver, port)).toBe(5);
    expect(await sender.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);
    expect(done).toBe(false);
    expect((await receiveOne(receiver, port)).id).toBe(1);
    await sixth;
    expect(done).toBe(true);
    const ids: number[] = [];
    for (let i = 0; i < 5; i++) ids.push((await receiveOne(receiver, port)).id);
    expect(ids).toEqual([2, 3, 4, 5, 6]);
    // The timed-out message was handed back, never queued.
    await rejectsWith(receiver.receive(port, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('blocks concurrent senders on other nodes at the limit and lets them all through in order as the receiver drains', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const receiver = await kernel.bootstrapTask.createOn(2, { inheritMemory: false });
    const port = await receiver.allocatePort();
    await receiver.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    const senders = await Promise.all([0, 1, 2].map(async (node) => {
      const sender = await kernel.bootstrapTask.createOn(node, { inheritMemory: false });
      await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
      return sender;
    }));
    const count = 40;
    const sending = senders.map((sender, index) => sender.execute(fixture('ipc.mjs'), 'sendNumbered', SEND, index, count));
    const received = await receiver.execute(fixture('ipc.mjs'), 'receiveNumbered', port, 3 * count, 5000) as
      { kr: number; got: [number, number][]; seqnos: number[] };
    expect(await Promise.all(sending)).toEqual([0, 1, 2].map((node) => ({ node, sent: count, kr: 0 })));
    expect(received.kr).toBe(0);
    expect(received.seqnos).toEqual(Array.from({ length: 3 * count }, (_, index) => index));
    for (const index of [0, 1, 2]) {
      expect(received.got.filter(([from]) => from === index).map(([, n]) => n))
        .toEqual(Array.from({ length: count }, (_, n) => n + 1));
    }
  });
});

describe('mach_msg on port sets', () => {
  it('receives from any member of a set, naming the member; MACH_RCV_IN_SET on a member directly until it leaves the set', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const sender = await kernel.bootstrapTask.createOn(0);
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const first = await task.allocatePort();
    const second = await task.allocatePort();
    await kernel.mach.mach_port_move_member(task, first, set);
    await task.moveMember(second, set);
    for (const [name, port] of [[0x2001, first], [0x2101, second]] as const) {
      await sender.insertRight(name, await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    }

    // A receive waiting on the set is served by a message to either member.
    const waiting = task.receive(set, { timeout: 5000 });
    await sender.send(to(0x2101, { id: 2 }));
    expect(await waiting).toMatchObject({ id: 2, localPort: second });

    await sender.send(to(0x2001, { id: 1 }));
    await rejectsWith(task.receive(first, { timeout: 0 }), MACH_RCV_IN_SET);
    expect(await kernel.mach.mach_msg(task, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, first, 0)).toEqual({ kr: MACH_RCV_IN_SET });
    expect(await receiveOne(task, set)).toMatchObject({ id: 1, localPort: first });

    await sender.send(to(0x2001, { id: 3 }));
    await sender.send(to(0x2101, { id: 4 }));
    await task.moveMember(first, MACH_PORT_NULL);
    expect(await receiveOne(task, first)).toMatchObject({ id: 3, localPort: first });
    expect(await receiveOne(task, set)).toMatchObject({ id: 4, localPort: second });
    await rejectsWith(task.receive(set, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('serves every member of a busy set, starving none', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    // On the set's node, so every message is queued when its send returns.
    const sender = await kernel.bootstrapTask.createOn(1);
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const members = [await task.allocatePort(), await task.allocatePort(), await task.allocatePort()];
    for (const [index, member] of members.entries()) {
      await task.moveMember(member, set);
      await sender.insertRight(0x2001 + index * 256, await task.extractRight(member, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
      for (let n = 0; n < 4; n++) await sender.send(to(0x2001 + index * 256, { id: index }));
    }
    const firstThree: number[] = [];
    for (let i = 0; i < 3; i++) firstThree.push((await receiveOne(task, set)).localPort);
    expect(firstThree.sort()).toEqual([...members].sort());
  });
});

describe('receiving is an awaitable that does not hold the node', () => {
  it('a receive waiting on node 1 lets node 1 answer other calls, then resolves when the message comes', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    let done = false;
    const waiting = receiver.receive(port).then((msg) => { done = true; return msg; });
    for (let i = 0; i < 10; i++) {
      const other = await receiver.allocatePort();
      expect(await receiver.portType(other)).toBe(MACH_PORT_TYPE_RECEIVE);
      await receiver.destroyPort(other);
      await receiver.allocate(kernel.pageSize);
    }
    expect(done).toBe(false);
    await sender.send(to(SEND, { id: 77 }));
    expect(await waiting).toMatchObject({ id: 77 });
  });

  it('inside a task: a pending mach_msg receive lets the same task make other calls first', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const port = await task.allocatePort();
    await task.insertRight(port, port, MACH_MSG_TYPE_MAKE_SEND);
    const result = await task.execute(fixture('ipc.mjs'), 'receiveWhileBusy', port, port);
    expect(result).toEqual({
      others: Array.from({ length: 40 }, () => KERN_SUCCESS), settledBeforeSend: false, sent: MACH_MSG_SUCCESS,
      kr: MACH_MSG_SUCCESS, id: 42,
    });
  });
});

describe('mach_msg errors change nothing', () => {
  it('returns MACH_SEND_INVALID_HEADER, _INVALID_DEST, _INVALID_REPLY, _INVALID_TYPE, _INVALID_RIGHT, _INVALID_DATA and _INVALID_MEMORY; nothing is queued or taken', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    const own = await sender.allocatePort();
    const region = await sender.allocate(kernel.pageSize);
    await sender.deallocate(region, kernel.pageSize);
    const moveSend = { remoteDisposition: MACH_MSG_TYPE_MOVE_SEND };
    const cases: Array<[unknown, number]> = [
      [null, MACH_SEND_INVALID_HEADER],
      [to(SEND, { remoteDisposition: MACH_MSG_TYPE_MOVE_RECEIVE }), MACH_SEND_INVALID_HEADER],
      [to(SEND, { remoteDisposition: 3 }), MACH_SEND_INVALID_HEADER],
      [to(SEND, { id: 1.5 }), MACH_SEND_INVALID_HEADER],
      [to(SEND, { localPort: own, localDisposition: 99 }), MACH_SEND_INVALID_HEADER],
      [to(0x7701), MACH_SEND_INVALID_DEST],
      [to(own), MACH_SEND_INVALID_DEST], // a receive right without a send right
      // A task's own kernel port takes messages now: the kernel serves them (test/kobject-calls.test.ts).
      [to(SEND, { ...moveSend, localPort: 0x7701, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE }), MACH_SEND_INVALID_REPLY],
      [to(SEND, { ...moveSend, localPort: SEND, localDisposition: MACH_MSG_TYPE_MAKE_SEND }), MACH_SEND_INVALID_REPLY],
      [to(SEND, { ...moveSend, ports: [{ name: own, disposition: 99 }] }), MACH_SEND_INVALID_TYPE],
      [to(SEND, { ...moveSend, ports: [{ name: own, disposition: MACH_MSG_TYPE_MOVE_SEND_ONCE }] }), MACH_SEND_INVALID_RIGHT],
      [to(SEND, { ...moveSend, ports: [{ name: 0x7701, disposition: MACH_MSG_TYPE_COPY_SEND }] }), MACH_SEND_INVALID_RIGHT],
      [to(SEND, { ...moveSend, body: 'text' as never }), MACH_SEND_INVALID_DATA],
      [to(SEND, { ...moveSend, ports: [{ name: own, disposition: MACH_MSG_TYPE_MOVE_RECEIVE }], ool: [{ address: region, size: 8 }] }),
        MACH_SEND_INVALID_MEMORY],
    ];
    const before = await spaceState(sender);
    for (const [msg, kr] of cases) {
      expect(await kernel.mach.mach_msg(sender, msg as MachMsgSend, MACH_SEND_MSG)).toEqual({ kr });
      await rejectsWith(sender.send(msg as MachMsgSend), kr);
    }
    expect(await spaceState(sender)).toEqual(before);
    expect(await queued(receiver, port)).toBe(0);
    await rejectsWith(receiver.receive(port, { timeout: 0 }), MACH_RCV_TIMED_OUT);
    // The send right is still good.
    await sender.send(to(SEND, { id: 8 }));
    expect((await receiveOne(receiver, port)).id).toBe(8);
  });

  it('returns MACH_RCV_INVALID_NAME for a name that holds no receive right or port set', async () => {
    const kernel = await bootKernel();
    const { sender } = await pair(kernel, 0, 1);
    const dead = await sender.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    for (const name of [SEND, dead, 0x7701, MACH_PORT_NULL]) {
      expect(await kernel.mach.mach_msg(sender, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, name, 0)).toEqual({ kr: MACH_RCV_INVALID_NAME });
      await rejectsWith(sender.receive(name), MACH_RCV_INVALID_NAME);
    }
  });

  it('skips the receive when the send half fails', async () => {
    const kernel = await bootKernel();
    const { sender, receiver, port } = await pair(kernel, 0, 1);
    const reply = await sender.allocatePort();
    await sender.send({ remotePort: reply, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 1 });
    expect(await kernel.mach.mach_msg(sender, to(0x7701), MACH_SEND_MSG | MACH_RCV_MSG, 0, 0, reply, 0))
      .toEqual({ kr: MACH_SEND_INVALID_DEST });
    expect(await queued(sender, reply)).toBe(1);
    const both = await kernel.mach.mach_msg(sender, to(SEND, { id: 2 }), MACH_SEND_MSG | MACH_RCV_MSG, 0, 0, reply, 0);
    expect(both.kr).toBe(MACH_MSG_SUCCESS);
    assert(both.msg !== undefined);
    expect(both.msg.id).toBe(1);
    expect((await receiveOne(receiver, port)).id).toBe(2);
  });
});
