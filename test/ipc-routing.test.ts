/**
 * Location transparency across real nodes: messages are routed to the node holding the receive
 * right, rights in them are translated into the receiver's space on its node, and a receive
 * right that moves (extract_right + insert_right, or MOVE_RECEIVE in a message) takes its queue
 * along. Proved under concurrent senders on every node while the right moves mid-stream, several
 * times: every (sender, n) arrives exactly once, and each sender's n strictly increase.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_NAME, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_RECEIVE,
  MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND, MACH_PORT_LIMITS_INFO,
  MACH_PORT_QLIMIT_MAX, MACH_PORT_RIGHT_PORT_SET, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_RCV_PORT_CHANGED, KERN_SUCCESS, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_NOTIFY_NO_SENDERS, MACH_PORT_NULL,
  type Kernel, type Task,
} from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

const IPC = fixture('ipc.mjs');
const GATE = fixture('gate.mjs');
/** The name senders hold their send right under, and holders their receive right. */
const SEND = 0x1001;
const RECEIVE = 0x7001;

interface Batch { readonly node: number; readonly kr: number; readonly got: [number, number][]; readonly seqnos: number[] }
interface Sent { readonly node: number; readonly sent: number; readonly kr: number }

async function newTask(kernel: Kernel, node: number): Promise<Task> {
  return kernel.bootstrapTask.createOn(node, { inheritMemory: false });
}

/** Moves the receive right `name` of `from` into `to` under RECEIVE (extract_right + insert_right). */
async function moveReceive(from: Task, name: number, to: Task): Promise<number> {
  const right = await from.extractRight(name, MACH_MSG_TYPE_MOVE_RECEIVE);
  await to.insertRight(RECEIVE, right, MACH_MSG_TYPE_MOVE_RECEIVE);
  return RECEIVE;
}

/** Senders on `nodes`, sender i holding a send right to `port` of `owner` under SEND. */
async function sendersTo(kernel: Kernel, owner: Task, port: number, nodes: readonly number[]): Promise<Task[]> {
  return Promise.all(nodes.map(async (node) => {
    const sender = await newTask(kernel, node);
    await sender.insertRight(SEND, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    return sender;
  }));
}

function startSending(senders: readonly Task[], count: number): Promise<Sent[]> {
  return Promise.all(senders.map((sender, id) => sender.execute(IPC, 'sendNumbered', SEND, id, count) as Promise<Sent>));
}

async function receiveBatch(holder: Task, name: number, count: number): Promise<Batch> {
  const batch = await holder.execute(IPC, 'receiveNumbered', name, count, 5000) as Batch;
  expect(batch).toMatchObject({ kr: 0, node: holder.node });
  expect(batch.got).toHaveLength(count);
  return batch;
}

/** Every (sender, n) exactly once, each sender's n strictly increasing: 1..count in order. */
function expectEveryMessageOnceInOrder(got: readonly (readonly [number, number])[], senders: number, count: number): void {
  expect(got).toHaveLength(senders * count);
  expect(new Set(got.map(([sender, n]) => `${sender}:${n}`)).size).toBe(senders * count);
  for (let sender = 0; sender < senders; sender++) {
    expect(got.filter(([from]) => from === sender).map(([, n]) => n)).toEqual(Array.from({ length: count }, (_, n) => n + 1));
  }
}

describe('routing to the receive right node', () => {
  it('routes a message from node 0 to a port on node 2, translating the send right it carries to a port on node 1', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const server = await newTask(kernel, 2);
    const service = await server.allocatePort();
    const third = await newTask(kernel, 1);
    const callback = await third.allocatePort();
    const client = await newTask(kernel, 0);
    await client.insertRight(SEND, await server.extractRight(service, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    await client.insertRight(0x2001, await third.extractRight(callback, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);

    await client.send({
      remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 5, body: Uint8Array.of(5),
      ports: [{ name: 0x2001, disposition: MACH_MSG_TYPE_COPY_SEND }],
    });
    const got = await server.receive(service, { timeout: 5000 });
    expect(got).toMatchObject({ id: 5, body: Uint8Array.of(5), localPort: service });
    const [right] = got.ports;
    expect(right?.type).toBe(MACH_MSG_TYPE_PORT_SEND);
    expect(await server.portType(right!.name)).toBe(MACH_PORT_TYPE_SEND);
    // The name is the server's own: the server on node 2 reaches node 1's port through it.
    await server.send({ remotePort: right!.name, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND, id: 6 });
    expect(await third.receive(callback, { timeout: 5000 })).toMatchObject({ id: 6, localPort: callback });
  });
});

describe('receive right migration under concurrent senders', () => {
  it('extract_right/insert_right moves the right 0 → 1 → 2 → 0 → 1 → 2 → 0 mid-stream, some hops back to back: every message once, in order per sender', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const holders = [await newTask(kernel, 0), await newTask(kernel, 1), await newTask(kernel, 2), await newTask(kernel, 0)];
    const [h0, h1, h2, h0b] = holders as [Task, Task, Task, Task];
    const port = await h0.allocatePort();
    await h0.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: MACH_PORT_QLIMIT_MAX });
    const senderNodes = [0, 0, 1, 1, 2, 2];
    const count = 300;
    const senders = await sendersTo(kernel, h0, port, senderNodes);
    const sending = startSending(senders, count);

    const got: [number, number][] = [];
    got.push(...(await receiveBatch(h0, port, 200)).got);
    let name = await moveReceive(h0, port, h1);
    got.push(...(await receiveBatch(h1, name, 200)).got);
    // Three hops back to back, with the queue (and blocked senders) behind them.
    name = await moveReceive(h1, name, h2);
    name = await moveReceive(h2, name, h0b);
    name = await moveReceive(h0b, name, h1);
    got.push(...(await receiveBatch(h1, name, 300)).got);
    name = await moveReceive(h1, name, h2);
    got.push(...(await receiveBatch(h2, name, 300)).got);
    name = await moveReceive(h2, name, h0);
    got.push(...(await receiveBatch(h0, name, senderNodes.length * count - got.length)).got);

    expect(await sending).toEqual(senderNodes.map((node) => ({ node, sent: count, kr: 0 })));
    expectEveryMessageOnceInOrder(got, senderNodes.length, count);
    // The queue limit travelled with the port.
    expect(await h0.portAttributes(name, MACH_PORT_LIMITS_INFO)).toEqual({ queue_limit: MACH_PORT_QLIMIT_MAX });
  });

  it('MOVE_RECEIVE in a message carries the right between tasks on different nodes mid-stream, with the default queue limit', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const holders = [await newTask(kernel, 0), await newTask(kernel, 1), await newTask(kernel, 2)];
    // Each holder has a mailbox; every holder holds a send right to every other mailbox under 0x6001 + 256 i.
    const mailboxes = await Promise.all(holders.map((holder) => holder.allocatePort()));
    for (const holder of holders) {
      for (const [index, owner] of holders.entries()) {
        if (owner === holder) continue;
        await holder.insertRight(0x6001 + 256 * index, await owner.extractRight(mailboxes[index]!, MACH_MSG_TYPE_MAKE_SEND),
          MACH_MSG_TYPE_MOVE_SEND);
      }
    }
    const port = await holders[0]!.allocatePort();
    const senderNodes = [0, 1, 2, 1];
    const count = 120;
    const senders = await sendersTo(kernel, holders[0]!, port, senderNodes);
    const sending = startSending(senders, count);

    const got: [number, number][] = [];
    let at = 0;
    let name = port;
    for (const next of [1, 2, 0, 2, 1]) {
      got.push(...(await receiveBatch(holders[at]!, name, 60)).got);
      const [sent, taken] = await Promise.all([
        holders[at]!.execute(IPC, 'sendReceiveRight', 0x6001 + 256 * next, name),
        holders[next]!.execute(IPC, 'takeReceiveRight', mailboxes[next], 5000),
      ]) as [{ kr: number; type: number }, { kr: number; name: number; type: number; node: number }];
      // The right left the sender's space with the message and is named in the receiver's.
      expect(sent).toEqual({ kr: 0, type: KERN_INVALID_NAME });
      expect(taken).toMatchObject({ kr: 0, type: MACH_MSG_TYPE_PORT_RECEIVE, node: holders[next]!.node });
      expect(await holders[next]!.portType(taken.name)).toBe(MACH_PORT_TYPE_RECEIVE);
      at = next;
      name = taken.name;
    }
    got.push(...(await receiveBatch(holders[at]!, name, senderNodes.length * count - got.length)).got);

    expect(await sending).toEqual(senderNodes.map((node) => ({ node, sent: count, kr: 0 })));
    expectEveryMessageOnceInOrder(got, senderNodes.length, count);
  });

  it('a port with messages queued and senders blocked moves with them: none lost, none duplicated, seqnos restart at the new receiver', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const first = await newTask(kernel, 0);
    const last = await newTask(kernel, 2);
    const port = await first.allocatePort();
    const senders = await sendersTo(kernel, first, port, [1, 2]);
    const count = 30;
    const sending = startSending(senders, count);
    // Hop through a task on every node without receiving: the queue stays full, senders blocked.
    let name = port;
    let from = first;
    for (const node of [1, 2, 0, 1]) {
      const to = await newTask(kernel, node);
      name = await moveReceive(from, name, to);
      from = to;
    }
    name = await moveReceive(from, name, last);
    const batch = await receiveBatch(last, name, 2 * count);
    expect(await sending).toEqual([{ node: 1, sent: count, kr: 0 }, { node: 2, sent: count, kr: 0 }]);
    expectEveryMessageOnceInOrder(batch.got, 2, count);
    expect(batch.seqnos).toEqual(Array.from({ length: 2 * count }, (_, index) => index));
  });

  it.each([
    ['0 → 1 → 0', 0],
    ['0 → 1 → 2', 2],
  ])('the queue follows the right %s even when the node holding it hears the requests out of order', async (_path, lastNode) => {
    const kernel = await bootKernel({ nodes: 3 });
    const first = await newTask(kernel, 0);
    const middle = await newTask(kernel, 1);
    const last = await newTask(kernel, lastNode);
    const port = await first.allocatePort();
    const [sender] = await sendersTo(kernel, first, port, [1]);
    for (let n = 1; n <= 3; n++) await sender!.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: n });

    // Hold node 0 (a task there blocks its event loop) while the right goes on: node 0 then finds
    // node 1's request for the queue waiting together with the next holder's.
    const gateTask = await newTask(kernel, 0);
    const gate = await gateTask.allocate(kernel.pageSize);
    const view = await gateTask.view(gate, 8);
    const words = new Int32Array(view.buffer, view.byteOffset, 2);
    const right = await first.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);
    const held = gateTask.execute(GATE, 'hold', gate);
    const entered = Atomics.waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    await middle.insertRight(RECEIVE, right, MACH_MSG_TYPE_MOVE_RECEIVE);
    const again = await middle.extractRight(RECEIVE, MACH_MSG_TYPE_MOVE_RECEIVE);
    const inserted = last.insertRight(RECEIVE, again, MACH_MSG_TYPE_MOVE_RECEIVE);
    if (lastNode !== 0) await inserted;
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    expect(await held).toEqual({ node: 0 });
    await inserted;

    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await last.receive(RECEIVE, { timeout: 5000 })).id);
    expect(ids).toEqual([1, 2, 3]);
    await sender!.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 4 });
    expect((await last.receive(RECEIVE, { timeout: 5000 })).id).toBe(4);
  });

  it('a receive right just arrived from another node joins a port set there at once; its queue follows into the set', async () => {
    const kernel = await bootKernel();
    const first = await newTask(kernel, 0);
    const next = await newTask(kernel, 1);
    const port = await first.allocatePort();
    const [sender] = await sendersTo(kernel, first, port, [0]);
    for (const id of [1, 2]) await sender!.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id });
    const set = await next.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const name = await moveReceive(first, port, next);
    await next.moveMember(name, set);
    await sender!.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 3 });
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const msg = await next.receive(set, { timeout: 5000 });
      expect(msg.localPort).toBe(name);
      ids.push(msg.id);
    }
    expect(ids).toEqual([1, 2, 3]);
  });

  it('a receiver waiting on the right when it is moved away gets MACH_RCV_PORT_CHANGED; the messages go with the right', async () => {
    const kernel = await bootKernel();
    const first = await newTask(kernel, 0);
    const next = await newTask(kernel, 1);
    const port = await first.allocatePort();
    const [sender] = await sendersTo(kernel, first, port, [1]);
    const waiting = first.receive(port).then(() => 0, (error: { kr: number }) => error.kr);
    // The waiter is registered once node 0 answers a later call.
    await first.portType(port);
    await moveReceive(first, port, next);
    expect(await waiting).toBe(MACH_RCV_PORT_CHANGED);
    await sender!.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 });
    expect((await next.receive(RECEIVE, { timeout: 5000 })).id).toBe(1);
  });
});

describe('requests on a receive right whose queue is still on its way', () => {
  it('mach_port_request_notification (no-senders) and mach_port_get_attributes wait for the queue, then answer for it', async () => {
    const kernel = await bootKernel();
    const first = await newTask(kernel, 0);
    const next = await newTask(kernel, 1);
    const port = await first.allocatePort();
    const notify = await next.allocatePort();
    await first.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 9 });
    const right = await first.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);

    // Hold node 0, where the queue is: node 1 gets the right but cannot have the queue yet.
    const gateTask = await newTask(kernel, 0);
    const gate = await gateTask.allocate(kernel.pageSize);
    const view = await gateTask.view(gate, 8);
    const words = new Int32Array(view.buffer, view.byteOffset, 2);
    const held = gateTask.execute(GATE, 'hold', gate);
    const entered = Atomics.waitAsync(words, 1, 0);
    if (entered.async) await entered.value;
    await next.insertRight(RECEIVE, right, MACH_MSG_TYPE_MOVE_RECEIVE);
    const requested = kernel.mach.mach_port_request_notification(next, RECEIVE, MACH_NOTIFY_NO_SENDERS, 0, notify,
      MACH_MSG_TYPE_MAKE_SEND_ONCE);
    const limits = next.portAttributes(RECEIVE, MACH_PORT_LIMITS_INFO);
    Atomics.store(words, 0, 1);
    Atomics.notify(words, 0);
    expect(await held).toEqual({ node: 0 });

    expect(await requested).toEqual({ kr: KERN_SUCCESS, previous: MACH_PORT_NULL });
    expect(await limits).toEqual({ queue_limit: 9 });
    // No send right exists: the request fires at once, from the port's new node.
    expect(await next.receive(notify, { timeout: 5000 })).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS });
  });
});
