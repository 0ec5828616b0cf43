/**
 * A node that dies loses nothing silently and hangs nothing: its ports die (blocked senders and
 * later sends fail with MACH_SEND_INVALID_DEST, the senders' rights become dead names, dead-name
 * notifications arrive), the send-once rights it held send MACH_NOTIFY_SEND_ONCE, the memory its
 * tasks mapped is released, and a teleport onto it either happened or left the parent as it was.
 * Real nodes, crashed with kernel.crashNode; the survivors learn of it before the next call.
 */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_NODE_DOWN, KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND,
  MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_NOTIFY_DEAD_NAME,
  MACH_NOTIFY_SEND_ONCE, MACH_PORT_LIMITS_INFO, MACH_PORT_NULL, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_TYPE_SEND,
  MACH_RCV_MSG, MACH_RCV_TIMED_OUT, MACH_RCV_TIMEOUT, MACH_SEND_INVALID_DEST, MACH_SEND_MSG,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_NOTIFY_NO_SENDERS, MACH_RCV_LARGE, MACH_RCV_TOO_LARGE, TASK_BOOTSTRAP_PORT,
  VM_INHERIT_SHARE, type Kernel, type MachMsgSend, type Task,
} from 'norma-rt';
import { bootKernel, fixture, snapshot, rejectsWith } from './helpers.js';

const SEND = 0x1001;
const COPY: MachMsgSend = { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND };

async function newTask(kernel: Kernel, node: number): Promise<Task> {
  return kernel.bootstrapTask.createOn(node, { inheritMemory: false });
}

/** `holder` gets a send right to `owner`'s `port` under `name`. */
async function giveSend(owner: Task, port: number, holder: Task, name = SEND): Promise<void> {
  await holder.insertRight(name, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
}

/** A client on node 0 with a send right to a port of a server on node `node`, queue limit 1, full. */
async function fullQueueOn(kernel: Kernel, node: number) {
  const server = await newTask(kernel, node);
  const port = await server.allocatePort();
  await server.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
  const client = await newTask(kernel, 0);
  await giveSend(server, port, client);
  await client.send({ ...COPY, id: 1 });
  return { server, client };
}

type Send = (kernel: Kernel, task: Task, msg: MachMsgSend) => Promise<number>;
const sendFaces: Array<[string, Send]> = [
  ['mach.mach_msg', async (kernel, task, msg) => (await kernel.mach.mach_msg(task, msg, MACH_SEND_MSG)).kr],
  ['Task.send', (_kernel, task, msg) => task.send(msg).then(() => KERN_SUCCESS, (error: { kr: number }) => error.kr)],
];

describe.each(sendFaces)('ports of a node that dies (%s)', (_face, send) => {
  it('fail a sender blocked on a full queue there with MACH_SEND_INVALID_DEST; its right becomes a dead name', async () => {
    const kernel = await bootKernel();
    const { client } = await fullQueueOn(kernel, 1);
    const blocked = send(kernel, client, { ...COPY, id: 2 });
    // Served after the send began to wait for a queue place.
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);

    await kernel.crashNode(1);
    expect(await blocked).toBe(MACH_SEND_INVALID_DEST);
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
  });

  it('fail later sends with MACH_SEND_INVALID_DEST and send the dead-name notifications requested on every surviving node', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const server = await newTask(kernel, 1);
    const port = await server.allocatePort();
    const watchers = [await newTask(kernel, 0), await newTask(kernel, 2)];
    const notifies: number[] = [];
    for (const watcher of watchers) {
      await giveSend(server, port, watcher);
      const notify = await watcher.allocatePort();
      expect(await watcher.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
      notifies.push(notify);
    }

    await kernel.crashNode(1);
    for (const [index, watcher] of watchers.entries()) {
      expect(await send(kernel, watcher, { ...COPY, id: 3 })).toBe(MACH_SEND_INVALID_DEST);
      expect(await watcher.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
      expect(await watcher.receive(notifies[index]!, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME, localPort: notifies[index] });
      await rejectsWith(watcher.receive(notifies[index]!, { timeout: 0 }), MACH_RCV_TIMED_OUT);
    }
  });
});

describe('a node that dies', () => {
  it('ends an RPC whose send half is blocked on a queue there, receive timeout or not, with MACH_SEND_INVALID_DEST', async () => {
    const kernel = await bootKernel();
    const { client } = await fullQueueOn(kernel, 1);
    const reply = await client.allocatePort();
    const rpc = kernel.mach.mach_msg(client, { ...COPY, id: 2, localPort: reply, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE },
      MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, reply, 600_000);
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);

    await kernel.crashNode(1);
    expect(await rpc).toEqual({ kr: MACH_SEND_INVALID_DEST });
    // The reply right was never taken: nothing arrives on the reply port.
    await rejectsWith(client.receive(reply, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('sends MACH_NOTIFY_SEND_ONCE for each send-once right to a surviving port it held: in a space, or in a message queued there', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const holder = await newTask(kernel, 1);
    await holder.insertRight(0x3001, await server.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    const mailbox = await holder.allocatePort();
    await giveSend(holder, mailbox, server);
    // A round trip first: the send-once right it used is answered for, and no notice follows it.
    const reply = await server.allocatePort();
    await server.send({ ...COPY, id: 3, localPort: reply, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE });
    const request = await holder.receive(mailbox, { timeout: 5000 });
    await holder.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: 5 });
    expect(await server.receive(reply, { timeout: 5000 })).toMatchObject({ id: 5 });
    // A message queued on node 1 carrying two send-once rights to `port`: its reply right and one in its body.
    await server.send({ ...COPY, id: 4, localPort: port, localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE,
      ports: [{ name: port, disposition: MACH_MSG_TYPE_MAKE_SEND_ONCE }] });

    await kernel.crashNode(1);
    for (let right = 0; right < 3; right++) {
      expect(await server.receive(port, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: port });
    }
    await rejectsWith(server.receive(port, { timeout: 0 }), MACH_RCV_TIMED_OUT);
    await rejectsWith(server.receive(reply, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('releases the memory its tasks mapped: once every surviving mapper is terminated, pagerInfo shows no object left', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const parent = await kernel.bootstrapTask.create();
    const shared = await parent.allocate(page);
    await parent.inherit(shared, page, VM_INHERIT_SHARE);
    await parent.allocate(2 * page);
    // Node 1 maps both objects of the parent (clone), the shared one again and, alone, the copy
    // of the other made on node 0 for a child created there.
    const clone = await parent.clone(1);
    await parent.createOn(1);
    await clone.allocate(page);
    expect((await kernel.pagerInfo())[0]).toEqual({ node: 0, objects: 3, bytes: 5 * page });

    await kernel.crashNode(1);
    // The copy only node 1 mapped is freed at once; the parent's objects live on with it.
    expect((await kernel.pagerInfo())[0]).toEqual({ node: 0, objects: 2, bytes: 3 * page });
    await parent.terminate();
    expect(await kernel.pagerInfo()).toEqual([
      { node: 0, objects: 0, bytes: 0 },
      { node: 1, objects: 0, bytes: 0, down: true },
    ]);
  });
});

/** A no-senders request on `owner`'s `port`, aimed at a fresh port of `owner` that it returns. */
async function requestNoSenders(owner: Task, port: number): Promise<number> {
  const notify = await owner.allocatePort();
  expect(await owner.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
  return notify;
}

/** A notification body: one little-endian 32-bit word. */
function word(value: number): Uint8Array {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, value, true);
  return body;
}

describe('what a node that dies held to ports on surviving nodes', () => {
  it('its send rights go (in spaces, special and registered slots, an inherited slot, queued messages): no-senders fires once survivors hold none', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const holder = await newTask(kernel, 1);
    await giveSend(server, port, holder);
    // Made with a send right out: a request on a port with none fires at once.
    const notify = await requestNoSenders(server, port);
    await holder.setSpecialPort(TASK_BOOTSTRAP_PORT, SEND);
    await holder.registerPorts([SEND]);
    // A child built on node 1 from a parent on node 0 inherits a send right (by task image).
    const parent = await newTask(kernel, 0);
    await giveSend(server, port, parent);
    await parent.setSpecialPort(TASK_BOOTSTRAP_PORT, SEND);
    await parent.deallocatePort(SEND);
    await parent.createOn(1, { inheritMemory: false });
    await parent.terminate();
    // A message queued on node 1 carrying one more.
    const mailbox = await holder.allocatePort();
    await giveSend(holder, mailbox, server, 0x5001);
    await server.send({ remotePort: 0x5001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ports: [{ name: port, disposition: MACH_MSG_TYPE_MAKE_SEND }] });
    // A survivor's right keeps no-senders away until it goes.
    const survivor = await newTask(kernel, 0);
    await giveSend(server, port, survivor);

    await kernel.crashNode(1);
    await rejectsWith(server.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
    await survivor.deallocatePort(SEND);
    // Four send rights were made (MAKE_SEND): the mscount the notification carries.
    expect(await server.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS, localPort: notify, body: word(4) });
    await rejectsWith(server.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('a receive right in a message queued there kills its port (queued on a survivor); its no-senders request sends MACH_NOTIFY_SEND_ONCE', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const client = await newTask(kernel, 0);
    await giveSend(server, port, client);
    const notify = await requestNoSenders(server, port);
    const holder = await newTask(kernel, 1);
    const mailbox = await holder.allocatePort();
    await giveSend(holder, mailbox, server, 0x5001);
    await server.send({ remotePort: 0x5001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ports: [{ name: port, disposition: MACH_MSG_TYPE_MOVE_RECEIVE }] });
    // The right lies in a message on node 1; the port's queue stays on node 0 and takes messages.
    await client.send({ ...COPY, id: 1 });

    await kernel.crashNode(1);
    await rejectsWith(client.send({ ...COPY, id: 2 }), MACH_SEND_INVALID_DEST);
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(await server.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: notify });
    await rejectsWith(server.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('the memory out-of-line regions of messages queued there held is released: pagerInfo shows none once the sender is gone', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const sender = await newTask(kernel, 0);
    const data = await sender.allocate(page);
    const receiver = await newTask(kernel, 1);
    const mailbox = await receiver.allocatePort();
    await giveSend(receiver, mailbox, sender);
    await sender.send({ ...COPY, ool: [{ address: data, size: page }, { address: data, size: page, share: true }] });
    // Queued there: lent to a receive too small for it, it stays (MACH_RCV_LARGE).
    expect(await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_LARGE | MACH_RCV_TIMEOUT, 0, 1, mailbox, 5000))
      .toMatchObject({ kr: MACH_RCV_TOO_LARGE });
    // The sender's object (mapped, and shared by the message) and the copy the message holds.
    expect((await kernel.pagerInfo())[0]).toEqual({ node: 0, objects: 2, bytes: 2 * page });

    await kernel.crashNode(1);
    expect((await kernel.pagerInfo())[0]).toEqual({ node: 0, objects: 1, bytes: page });
    await sender.terminate();
    expect(await kernel.pagerInfo()).toEqual([
      { node: 0, objects: 0, bytes: 0 },
      { node: 1, objects: 0, bytes: 0, down: true },
    ]);
  });
});

type Teleport = (kernel: Kernel, parent: Task, node: number) => Promise<{ kr: number; child?: Task }>;
const teleportFaces: Array<[string, Teleport]> = [
  ['mach.norma_task_teleport', async (kernel, parent, node) => {
    const reply = await kernel.mach.norma_task_teleport(parent, true, node);
    return reply.child_task === undefined ? { kr: reply.kr } : { kr: reply.kr, child: reply.child_task };
  }],
  ['Task.teleport', (_kernel, parent, node) => parent.teleport(node).then(
    (child) => ({ kr: KERN_SUCCESS, child }), (error: { kr: number }) => ({ kr: error.kr }))],
];

describe.each(teleportFaces)('a teleport whose child node dies before building the child (%s)', (_face, teleport) => {
  it('answers KERN_NODE_DOWN and leaves the parent alive and unchanged; a retry elsewhere moves it', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const page = kernel.pageSize;
    const parent = await kernel.bootstrapTask.create();
    const data = await parent.allocate(page);
    await parent.write(data, Uint8Array.of(1, 2, 3));
    const before = await snapshot(parent);
    const { holder, held, open } = await holdNode(kernel, 0);

    // Node 0 holds the call until node 1 is gone: the image it then sends is never adopted.
    const moving = teleport(kernel, parent, 1);
    await kernel.crashNode(1);
    open();
    expect(await held).toEqual({ node: 0 });
    expect(await moving).toEqual({ kr: KERN_NODE_DOWN });

    expect(await parent.info()).toMatchObject({ node: 0 });
    expect(await snapshot(parent)).toEqual(before);
    const moved = await teleport(kernel, parent, 2);
    assert(moved.child !== undefined);
    expect(moved.child.node).toBe(2);
    expect(await moved.child.read(data, 3)).toEqual(Uint8Array.of(1, 2, 3));
    expect(await kernel.mach.task_info(parent)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    await moved.child.terminate();
    await holder.terminate();
    expect((await kernel.pagerInfo()).map(({ objects }) => objects)).toEqual([0, 0, 0]);
  });
});

/** Holds `node` with task code of another task on it until `open()` (gate.mjs). */
async function holdNode(kernel: Kernel, node: number) {
  const holder = await kernel.bootstrapTask.createOn(node, { inheritMemory: false });
  const gate = await holder.allocate(kernel.pageSize);
  const view = await holder.view(gate, 8);
  const words = new Int32Array(view.buffer, view.byteOffset, 2);
  const held = holder.execute(fixture('gate.mjs'), 'hold', gate);
  const entered = Atomics.waitAsync(words, 1, 0);
  if (entered.async) await entered.value;
  return {
    holder,
    held,
    open: () => {
      Atomics.store(words, 0, 1);
      Atomics.notify(words, 0);
    },
  };
}
