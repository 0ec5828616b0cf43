/**
 * Issue 7, "rights are never lost or duplicated", and the IPC resource limits: insert_right under
 * names the space refuses keeps the right, header rights from one name are checked together,
 * a no-senders request survives moving the receive right, dead-name requests on dead names, rights
 * whose port died in a queued message, message bodies copied at send, rcv_size, and bounded
 * per-sender order state. One regression per item; rejected calls leave the state as it was.
 */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_NAME, KERN_NAME_EXISTS, KERN_NO_SPACE, KERN_SUCCESS, MACH_MSG_SUCCESS,
  MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE,
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE,
  MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS, MACH_PORT_DEAD, MACH_PORT_NULL, MACH_PORT_RECEIVE_STATUS,
  MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_SEND_ONCE, MACH_RCV_LARGE, MACH_RCV_MSG, MACH_RCV_TIMED_OUT,
  MACH_RCV_TIMEOUT, MACH_RCV_TOO_LARGE, MACH_SEND_INVALID_DEST, MACH_SEND_INVALID_HEADER, MACH_SEND_MSG,
  MACH_NOTIFY_SEND_ONCE, MACH_SEND_INVALID_RIGHT, krName, type Kernel, type Task,
} from 'norma-rt';
import { NodeIpc } from '../src/actors/ipc/ipc-node.js';
import { TaskIpc } from '../src/actors/ipc/space.js';
import { PortTable } from '../src/actors/ipc/port-table.js';
import type { NodeId, TaskId } from '../src/shared/types.js';
import { bootKernel, fixture, rejectsWith, spaceState } from './helpers.js';
import type { IpcHost } from '../src/actors/ipc/ipc-types.js';
import type { OolMemory } from '../src/actors/ipc/mach-msg.js';

const SEND = 0x1001;
const HARDENING = fixture('hardening-rights.mjs');

async function newTask(kernel: Kernel, node: number): Promise<Task> {
  return kernel.bootstrapTask.createOn(node, { inheritMemory: false });
}

async function status(task: Task, port: number) {
  return await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS) as { mps_msgcount: number; mps_srights: boolean; mps_nsrequest: boolean };
}

/** A no-senders request on `owner`'s `port`, aimed at a fresh port of `owner` that it returns. */
async function requestNoSenders(owner: Task, port: number): Promise<number> {
  const notify = await owner.allocatePort();
  expect(await owner.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
  return notify;
}

describe('mach_port_insert_right under a name the space refuses keeps the right', () => {
  it('answers KERN_NAME_EXISTS or KERN_NO_SPACE for a PortRight token, which stays usable, and no-senders still fires', async () => {
    const kernel = await bootKernel();
    const owner = await newTask(kernel, 0);
    const holder = await newTask(kernel, 1);
    const port = await owner.allocatePort();
    const other = await owner.allocatePort();
    const notify = await requestNoSenders(owner, port);
    await holder.insertRight(0x2001, await owner.extractRight(other, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const token = await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND);
    const before = await spaceState(holder);
    // 0x64: index 0 (the task-self name's) under generation 0x64; 0x2002: 0x2001's index.
    for (const [name, kr] of [[0x64, KERN_NAME_EXISTS], [0x2002, KERN_NAME_EXISTS], [0x12345601, KERN_NO_SPACE],
      [0x9684f1bf, KERN_NO_SPACE]] as const) {
      expect(krName(await kernel.mach.mach_port_insert_right(holder, name, token, MACH_MSG_TYPE_MOVE_SEND))).toBe(krName(kr));
      expect(token.consumed).toBe(false);
    }
    await rejectsWith(holder.insertRight(0x2002, token, MACH_MSG_TYPE_MOVE_SEND), KERN_NAME_EXISTS);
    expect(await spaceState(holder)).toEqual(before);
    expect((await status(owner, port)).mps_srights).toBe(true);

    await holder.insertRight(0x3001, token, MACH_MSG_TYPE_MOVE_SEND);
    expect(token.consumed).toBe(true);
    await holder.deallocatePort(0x3001);
    expect(await owner.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS });
  });

  it('answers the same for a name in the task space, which keeps its send-once right', async () => {
    const kernel = await bootKernel();
    const owner = await newTask(kernel, 0);
    const port = await owner.allocatePort();
    await owner.insertRight(0x5001, port, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    const before = await spaceState(owner);
    for (const [name, poly, polyPoly, kr] of [
      [0x64, 0x5001, MACH_MSG_TYPE_MOVE_SEND_ONCE, KERN_NAME_EXISTS],
      [0x5002, 0x5001, MACH_MSG_TYPE_MOVE_SEND_ONCE, KERN_NAME_EXISTS],
      [0x12345601, 0x5001, MACH_MSG_TYPE_MOVE_SEND_ONCE, KERN_NO_SPACE],
      [0x9684f1bf, port, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_NO_SPACE],
    ] as const) {
      expect(krName(await kernel.mach.mach_port_insert_right(owner, name, poly, polyPoly))).toBe(krName(kr));
    }
    await rejectsWith(owner.insertRight(0x64, 0x5001, MACH_MSG_TYPE_MOVE_SEND_ONCE), KERN_NAME_EXISTS);
    expect(await spaceState(owner)).toEqual(before);
    expect(await owner.portType(0x5001)).toBe(MACH_PORT_TYPE_SEND_ONCE);
  });
});

describe('one name as destination and reply: header rights checked together, then taken together', () => {
  async function setup(kernel: Kernel) {
    const receiver = await newTask(kernel, 1);
    const sender = await newTask(kernel, 0);
    const port = await receiver.allocatePort();
    await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    return { receiver, sender, port };
  }

  it('MOVE_SEND + MOVE_SEND of one uref fails with MACH_SEND_INVALID_DEST, taking nothing; with two urefs both go', async () => {
    const kernel = await bootKernel();
    const { receiver, sender, port } = await setup(kernel);
    const msg = { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND, localPort: SEND, localDisposition: MACH_MSG_TYPE_MOVE_SEND };
    const before = await spaceState(sender);
    expect(await kernel.mach.mach_msg(sender, msg, MACH_SEND_MSG)).toEqual({ kr: MACH_SEND_INVALID_DEST });
    await rejectsWith(sender.send(msg), MACH_SEND_INVALID_DEST);
    expect(await spaceState(sender)).toEqual(before);
    expect((await status(receiver, port)).mps_msgcount).toBe(0);

    await sender.modRefs(SEND, MACH_PORT_RIGHT_SEND, 1);
    await sender.send(msg);
    expect((await sender.portNames()).names).not.toContain(SEND);
    const got = await receiver.receive(port, { timeout: 5000 });
    expect(got).toMatchObject({ remotePort: port, remoteType: MACH_MSG_TYPE_PORT_SEND });
  });

  it('MOVE_SEND + COPY_SEND of one uref delivers the reply as a send right', async () => {
    const kernel = await bootKernel();
    const { receiver, sender, port } = await setup(kernel);
    await requestNoSenders(receiver, port);
    expect(await kernel.mach.mach_msg(sender, { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND, localPort: SEND,
      localDisposition: MACH_MSG_TYPE_COPY_SEND }, MACH_SEND_MSG)).toEqual({ kr: MACH_MSG_SUCCESS });
    expect((await sender.portNames()).names).not.toContain(SEND);
    const got = await receiver.receive(port, { timeout: 5000 });
    // The reply right joins the receive right's name: one send right survives the message.
    expect(got).toMatchObject({ remotePort: port, remoteType: MACH_MSG_TYPE_PORT_SEND });
    expect(await receiver.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(1);
    expect((await status(receiver, port)).mps_srights).toBe(true);
  });

  it('MOVE_SEND_ONCE + MOVE_SEND_ONCE of one send-once name fails with MACH_SEND_INVALID_DEST and keeps it', async () => {
    const kernel = await bootKernel();
    const { receiver, sender, port } = await setup(kernel);
    await sender.insertRight(0x2001, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    const msg = { remotePort: 0x2001, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, localPort: 0x2001,
      localDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE };
    const before = await spaceState(sender);
    expect(await kernel.mach.mach_msg(sender, msg, MACH_SEND_MSG)).toEqual({ kr: MACH_SEND_INVALID_DEST });
    await rejectsWith(sender.send(msg), MACH_SEND_INVALID_DEST);
    expect(await spaceState(sender)).toEqual(before);
    expect(await sender.portType(0x2001)).toBe(MACH_PORT_TYPE_SEND_ONCE);
    expect((await status(receiver, port)).mps_msgcount).toBe(0);
  });
});

it('a no-senders request survives moving the receive right to another node (GNU Mach): its send-once right is not lost', async () => {
  const kernel = await bootKernel();
  const first = await newTask(kernel, 0);
  const next = await newTask(kernel, 1);
  const holder = await newTask(kernel, 1);
  const port = await first.allocatePort();
  await holder.insertRight(SEND, await first.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
  const notify = await requestNoSenders(first, port);
  await next.insertRight(0x7001, await first.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE), MACH_MSG_TYPE_MOVE_RECEIVE);
  expect((await status(next, 0x7001)).mps_nsrequest).toBe(true);
  await holder.deallocatePort(SEND);
  // The make-send count restarted at 0 with the move.
  const body = new Uint8Array(4);
  expect(await first.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS, body });
});

type DestroyPort = (kernel: Kernel, task: Task, name: number) => Promise<number>;
const destroyFaces: Array<[string, DestroyPort]> = [
  ['mach.mach_port_destroy', (kernel, task, name) => kernel.mach.mach_port_destroy(task, name)],
  ['Task.destroyPort', (_kernel, task, name) => task.destroyPort(name).then(() => KERN_SUCCESS, (error: { kr: number }) => error.kr)],
];

describe.each(destroyFaces)('a port that dies with a no-senders request (%s)', (_face, destroyPort) => {
  it('sends its send-once right MACH_NOTIFY_SEND_ONCE (ipc_port_destroy), once', async () => {
    const kernel = await bootKernel();
    const owner = await newTask(kernel, 0);
    const holder = await newTask(kernel, 1);
    const port = await owner.allocatePort();
    await holder.insertRight(SEND, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const notify = await requestNoSenders(owner, port);

    expect(await destroyPort(kernel, owner, port)).toBe(KERN_SUCCESS);
    expect(await owner.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: notify });
    expect(await holder.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    // The request died with the port: the holder's last right going sends nothing more.
    await holder.deallocatePort(SEND);
    await rejectsWith(owner.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });
});

describe('a message wrecked by MACH_SEND_INVALID_RIGHT (a body name spent twice)', () => {
  it('destroys its send-once destination right with MACH_NOTIFY_SEND_ONCE, and no second one when the sender\'s node dies', async () => {
    const kernel = await bootKernel();
    const owner = await newTask(kernel, 0);
    const sender = await newTask(kernel, 1);
    const port = await owner.allocatePort();
    await sender.insertRight(0x3001, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    // One send right of one uref, moved twice in the body: the second copyin fails.
    const spent = await sender.allocatePort();
    await sender.insertRight(spent, spent, MACH_MSG_TYPE_MAKE_SEND);
    const msg = { remotePort: 0x3001, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE,
      ports: [{ name: spent, disposition: MACH_MSG_TYPE_MOVE_SEND }, { name: spent, disposition: MACH_MSG_TYPE_MOVE_SEND }] };

    expect(await kernel.mach.mach_msg(sender, msg, MACH_SEND_MSG)).toEqual({ kr: MACH_SEND_INVALID_RIGHT });
    expect(await owner.receive(port, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: port });
    await rejectsWith(sender.portType(0x3001), KERN_INVALID_NAME);
    // Node 1 answers for no send-once right to the port any more.
    await kernel.crashNode(1);
    await rejectsWith(owner.receive(port, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });
});

it('a dead-name request with sync 0 on a dead name answers KERN_INVALID_ARGUMENT, keeping urefs and the notify right', async () => {
  const kernel = await bootKernel();
  const server = await newTask(kernel, 0);
  const client = await newTask(kernel, 1);
  const port = await server.allocatePort();
  await client.insertRight(SEND, await server.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
  await server.destroyPort(port);
  expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
  const notify = await client.allocatePort();
  await client.insertRight(0x2001, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
  const before = await spaceState(client);
  expect(await kernel.mach.mach_port_request_notification(client, SEND, MACH_NOTIFY_DEAD_NAME, 0, 0x2001,
    MACH_MSG_TYPE_MOVE_SEND_ONCE)).toEqual({ kr: KERN_INVALID_ARGUMENT, previous: MACH_PORT_NULL });
  await rejectsWith(client.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE),
    KERN_INVALID_ARGUMENT);
  expect(await spaceState(client)).toEqual(before);
  expect(await client.getRefs(SEND, MACH_PORT_RIGHT_DEAD_NAME)).toBe(1);
  await rejectsWith(client.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);

  // sync != 0 asks for the notification at once (GNU Mach, xnu): the name gains a uref.
  expect(await client.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 1, 0x2001, MACH_MSG_TYPE_MOVE_SEND_ONCE)).toBe(MACH_PORT_NULL);
  expect(await client.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME });
  expect(await client.getRefs(SEND, MACH_PORT_RIGHT_DEAD_NAME)).toBe(2);
});

it('rights in a queued message whose port died before receipt arrive as MACH_PORT_DEAD, naming nothing new', async () => {
  const kernel = await bootKernel();
  const receiver = await newTask(kernel, 1);
  const sender = await newTask(kernel, 0);
  const port = await receiver.allocatePort();
  await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
  const doomed = await sender.allocatePort();
  await sender.send({
    remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 5, localPort: doomed,
    localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, ports: [{ name: doomed, disposition: MACH_MSG_TYPE_MAKE_SEND }],
  });
  await sender.destroyPort(doomed);
  const before = await receiver.portNames();
  const got = await receiver.receive(port, { timeout: 5000 });
  expect(got).toMatchObject({
    id: 5, remotePort: MACH_PORT_DEAD, remoteType: MACH_MSG_TYPE_PORT_SEND_ONCE,
    ports: [{ name: MACH_PORT_DEAD, type: MACH_MSG_TYPE_PORT_SEND }],
  });
  expect(await receiver.portNames()).toEqual(before);
});

describe('mach_msg copies the body at send, wherever the receiver is', () => {
  it.each([[0, 0], [0, 1]])('a sender on node %i reusing its buffer does not change the message received on node %i', async (from, at) => {
    const kernel = await bootKernel();
    const receiver = await newTask(kernel, at);
    const sender = await newTask(kernel, from);
    const port = await receiver.allocatePort();
    await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    expect(await sender.execute(HARDENING, 'sendAndReuse', SEND, MACH_MSG_TYPE_COPY_SEND)).toBe(MACH_MSG_SUCCESS);
    expect((await receiver.receive(port, { timeout: 5000 })).body).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('task code sending to its own port receives a copy, not its own buffer', async () => {
    const kernel = await bootKernel();
    const task = await newTask(kernel, 1);
    const port = await task.allocatePort();
    expect(await task.execute(HARDENING, 'sendToSelfAndReuse', port)).toEqual({ sent: 0, kr: 0, got: [1, 2, 3], aliased: false });
  });
});

describe('mach_msg honors rcv_size', () => {
  /** 5 body bytes and one port right: 24 + 4 + 12 + 5 = 45 bytes. */
  const SIZE = 45;

  async function setup(kernel: Kernel) {
    const receiver = await newTask(kernel, 1);
    const sender = await newTask(kernel, 0);
    const port = await receiver.allocatePort();
    await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const carried = await sender.allocatePort();
    const send = () => sender.send({
      remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 7, body: Uint8Array.of(1, 2, 3, 4, 5),
      ports: [{ name: carried, disposition: MACH_MSG_TYPE_MAKE_SEND }],
    });
    return { receiver, sender, port, carried, send };
  }

  it('MACH_RCV_LARGE: MACH_RCV_TOO_LARGE with the size, the message staying queued for a large enough buffer', async () => {
    const kernel = await bootKernel();
    const { receiver, port, send } = await setup(kernel);
    await send();
    const option = MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_TIMEOUT;
    expect(await kernel.mach.mach_msg(receiver, null, option, 0, SIZE - 1, port, 5000)).toEqual({ kr: MACH_RCV_TOO_LARGE, size: SIZE });
    expect((await status(receiver, port)).mps_msgcount).toBe(1);
    const got = await kernel.mach.mach_msg(receiver, null, option, 0, SIZE, port, 5000);
    expect(got.kr).toBe(MACH_MSG_SUCCESS);
    expect(got.msg).toMatchObject({ id: 7, seqno: 0, body: Uint8Array.of(1, 2, 3, 4, 5), ports: [{ type: MACH_MSG_TYPE_PORT_SEND }] });
  });

  it('MACH_RCV_LARGE on a receiver already waiting: woken with the size, the message queued', async () => {
    const kernel = await bootKernel();
    const { receiver, port, send } = await setup(kernel);
    const waiting = kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_LARGE, 0, 30, port, 0);
    await send();
    expect(await waiting).toEqual({ kr: MACH_RCV_TOO_LARGE, size: SIZE });
    expect((await receiver.receive(port, { timeout: 5000 })).id).toBe(7);
  });

  it('without MACH_RCV_LARGE the message is dequeued and destroyed, the rights in it released', async () => {
    const kernel = await bootKernel();
    const { receiver, sender, port, carried, send } = await setup(kernel);
    await send();
    expect((await status(sender, carried)).mps_srights).toBe(true);
    expect(await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, SIZE - 1, port, 5000))
      .toEqual({ kr: MACH_RCV_TOO_LARGE, size: SIZE });
    expect((await status(receiver, port)).mps_msgcount).toBe(0);
    expect((await status(sender, carried)).mps_srights).toBe(false);
    await send();
    // The destroyed message used its sequence number.
    expect((await receiver.receive(port, { timeout: 5000 })).seqno).toBe(1);
  });

  it('answers KERN_INVALID_ARGUMENT for an rcv_size that is not a non-negative integer, sending nothing', async () => {
    const kernel = await bootKernel();
    const { receiver, sender, port } = await setup(kernel);
    for (const size of [-1, 1.5, Number.NaN]) {
      expect(await kernel.mach.mach_msg(sender, { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND },
        MACH_SEND_MSG | MACH_RCV_MSG, 0, size, port, 0)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    }
    expect((await status(receiver, port)).mps_msgcount).toBe(0);
  });
});

describe('resource limits answer with codes, and order state stays bounded', () => {
  const host = { post() {}, releaseObject() {}, holdRegions() {}, portDied() {} } as unknown as IpcHost;
  const memory = {} as OolMemory;
  let nextTask = 1;
  const newIpcTask = (ipc: NodeIpc) => new TaskIpc(ipc, (nextTask++ * 1024) as TaskId, memory, null);

  it('a task keeps no sequence number for destinations that died', async () => {
    const ipc = new NodeIpc(0 as NodeId, new PortTable(PortTable.create(), 0 as NodeId), host);
    const task = newIpcTask(ipc);
    for (let i = 0; i < 5000; i++) {
      const { name } = task.allocate(MACH_PORT_RIGHT_RECEIVE);
      expect(await task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND }, 0)).toBe(MACH_MSG_SUCCESS);
      task.destroy(name);
    }
    expect(task.sequencedPorts).toBeLessThanOrEqual(1024);
  });

  it('a port keeps no order state for senders that died once none of their messages can still arrive', async () => {
    const ipc = new NodeIpc(0 as NodeId, new PortTable(PortTable.create(), 0 as NodeId), host);
    const receiver = newIpcTask(ipc);
    const { name: port } = receiver.allocate(MACH_PORT_RIGHT_RECEIVE);
    for (let i = 0; i < 2000; i++) {
      const sender = newIpcTask(ipc);
      const { right } = receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND);
      assert(right !== undefined);
      expect(sender.insertRight(SEND, right, MACH_MSG_TYPE_MOVE_SEND).kr).toBe(KERN_SUCCESS);
      expect(await sender.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: i }, 0)).toBe(MACH_MSG_SUCCESS);
      expect((await receiver.receive(port, 0)).msg?.id).toBe(i);
      sender.terminate();
    }
    const entry = receiver.space.lookup(port as never);
    assert(entry?.port != null);
    expect(ipc.local(entry.port)!.expected.size).toBeLessThanOrEqual(128);
  });

  it('a receive timeout above 2^31 ms does not expire after 1 ms while the queue is on its way', async () => {
    const kernel = await bootKernel();
    const first = await newTask(kernel, 0);
    const gateTask = await newTask(kernel, 0);
    const next = await newTask(kernel, 1);
    const sender = await newTask(kernel, 1);
    const port = await first.allocatePort();
    await sender.insertRight(SEND, await first.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const gate = await gateTask.allocate(kernel.pageSize);
    const view = await gateTask.view(gate, 8);
    const words = new Int32Array(view.buffer, view.byteOffset, 2);
    const right = await first.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);
    // Node 0 holds the queue and is held: the queue cannot leave it until the gate opens.
    const held = gateTask.execute(fixture('gate.mjs'), 'hold', gate);
    const entered = Atomics.waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    await next.insertRight(0x7001, right, MACH_MSG_TYPE_MOVE_RECEIVE);
    let settled = false;
    const receiving = next.receive(0x7001, { timeout: 2 ** 31 + 1000 }).finally(() => { settled = true; });
    // Well past 1 ms of node 1 serving other calls, the receive still waits.
    for (const started = performance.now(); performance.now() - started < 50;) await next.portNames();
    expect(settled).toBe(false);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    expect(await held).toEqual({ node: 0 });
    await sender.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 8 });
    expect((await receiving).id).toBe(8);
  });

  it('a msgh_id wider than 32 bits answers MACH_SEND_INVALID_HEADER across nodes instead of throwing', async () => {
    const kernel = await bootKernel();
    const receiver = await newTask(kernel, 1);
    const sender = await newTask(kernel, 0);
    const port = await receiver.allocatePort();
    await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const before = await spaceState(sender);
    expect(await kernel.mach.mach_msg(sender, { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND, id: 2 ** 40 },
      MACH_SEND_MSG)).toEqual({ kr: MACH_SEND_INVALID_HEADER });
    expect(await spaceState(sender)).toEqual(before);
    expect((await status(receiver, port)).mps_msgcount).toBe(0);
  });
});
