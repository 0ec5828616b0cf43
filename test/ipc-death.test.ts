/**
 * Port and task death across real nodes: terminating a task destroys its receive rights (send
 * rights elsewhere become dead names, dead-name notifications arrive, sends fail) and releases
 * its send rights (no-senders fires); port-destroyed rescues a receive right; send-once rights
 * that die unused send their notification; a teleported task's old kernel port dies.
 */
import { assert, describe, expect, it, vi } from 'vitest';
import {
  KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_MSG_TYPE_PORT_RECEIVE, MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_PORT_DELETED,
  MACH_NOTIFY_PORT_DESTROYED, MACH_NOTIFY_SEND_ONCE, MACH_PORT_LIMITS_INFO, MACH_PORT_NULL,
  MACH_PORT_RECEIVE_STATUS, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_SEND, MACH_PORT_TYPE_DEAD_NAME,
  MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND, MACH_RCV_MSG, MACH_RCV_PORT_DIED, MACH_RCV_TIMED_OUT,
  MACH_SEND_INVALID_DEST, MACH_SEND_MSG, TASK_KERNEL_PORT, type Kernel, type Task,
} from 'norma-rt';
import { bootKernel, itInOneProcess, rejectsWith } from './helpers.js';

const SEND = 0x1001;

async function newTask(kernel: Kernel, node: number): Promise<Task> {
  return kernel.bootstrapTask.createOn(node, { inheritMemory: false });
}

/** A notification body: one little-endian u32 (a name, or a make-send count). */
function word(value: number): Uint8Array {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, value, true);
  return body;
}

/** `holder` gets a send right to `owner`'s `port` under `name`. */
async function giveSend(owner: Task, port: number, holder: Task, name = SEND): Promise<void> {
  await holder.insertRight(name, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
}

/** A port of `task` for notifications, and a dead-name request on `name` aimed at it. */
async function requestDeadName(task: Task, name: number, sync = 0): Promise<number> {
  const notify = await task.allocatePort();
  expect(await task.requestNotification(name, MACH_NOTIFY_DEAD_NAME, sync, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
  return notify;
}

async function notification(task: Task, port: number) {
  return task.receive(port, { timeout: 5000 });
}

type Terminate = (kernel: Kernel, task: Task) => Promise<void>;
const faces: Array<[string, Terminate]> = [
  ['Task.terminate', (_kernel, task) => task.terminate()],
  ['mach.task_terminate', async (kernel, task) => { expect(await kernel.mach.task_terminate(task)).toBe(KERN_SUCCESS); }],
];

describe.each(faces)('terminating a task (%s)', (_face, terminate) => {
  it('destroys its receive rights: send rights on its node and others become dead names, dead-name notifications arrive, sends fail', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const watcher = await newTask(kernel, 1);
    const bystander = await newTask(kernel, 0);
    await giveSend(server, port, watcher);
    await watcher.modRefs(SEND, MACH_PORT_RIGHT_SEND, 1);
    await giveSend(server, port, bystander, 0x2001);
    const notify = await requestDeadName(watcher, SEND);

    await terminate(kernel, server);
    const dead = await notification(watcher, notify);
    expect(dead).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME, body: word(SEND), localPort: notify, remotePort: MACH_PORT_NULL });
    expect(await kernel.mach.mach_port_type(watcher, SEND)).toEqual({ kr: KERN_SUCCESS, ptype: MACH_PORT_TYPE_DEAD_NAME });
    // The dead name keeps its 2 urefs and gained one for the notification.
    expect(await watcher.getRefs(SEND, MACH_PORT_RIGHT_DEAD_NAME)).toBe(3);
    expect(await bystander.portType(0x2001)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(await bystander.getRefs(0x2001, MACH_PORT_RIGHT_DEAD_NAME)).toBe(1);
    for (const [task, name] of [[watcher, SEND], [bystander, 0x2001]] as const) {
      expect(await kernel.mach.mach_msg(task, { remotePort: name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND }, MACH_SEND_MSG))
        .toEqual({ kr: MACH_SEND_INVALID_DEST });
    }
    // Only one notification per request.
    await rejectsWith(watcher.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('releases its send rights: the last one going fires no-senders at the port, carrying the make-send count', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const notify = await server.allocatePort();
    const clients = [await newTask(kernel, 1), await newTask(kernel, 0)];
    for (const client of clients) await giveSend(server, port, client);
    expect(await server.requestNotification(port, MACH_NOTIFY_NO_SENDERS, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
    expect(await server.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_nsrequest: true, mps_mscount: 2 });

    await terminate(kernel, clients[0]!);
    expect(await server.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_srights: true });
    await terminate(kernel, clients[1]!);
    expect(await notification(server, notify)).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS, body: word(2), localPort: notify });
    expect(await server.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_srights: false, mps_nsrequest: false });
    await rejectsWith(server.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });
});

describe('notifications', () => {
  it('port-destroyed hands the receive right, queue and all, to the registrant on another node instead of killing the port', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 1);
    const backup = await newTask(kernel, 0);
    const client = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const rescue = await backup.allocatePort();
    await server.insertRight(0x5001, await backup.extractRight(rescue, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    expect(await kernel.mach.mach_port_request_notification(server, port, MACH_NOTIFY_PORT_DESTROYED, 0, 0x5001,
      MACH_MSG_TYPE_MOVE_SEND_ONCE)).toEqual({ kr: KERN_SUCCESS, previous: MACH_PORT_NULL });
    await giveSend(server, port, client);
    for (const id of [1, 2]) await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id });

    await server.terminate();
    const notice = await notification(backup, rescue);
    expect(notice).toMatchObject({ id: MACH_NOTIFY_PORT_DESTROYED });
    expect(notice.ports).toHaveLength(1);
    expect(notice.ports[0]!.type).toBe(MACH_MSG_TYPE_PORT_RECEIVE);
    const rescued = notice.ports[0]!.name;
    expect(await backup.portType(rescued)).toBe(MACH_PORT_TYPE_RECEIVE);
    // The port lives on: the client's right still works, earlier messages are still queued.
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);
    await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 3 });
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push((await notification(backup, rescued)).id);
    expect(ids).toEqual([1, 2, 3]);
  });

  it('port-destroyed fails the old holder own waiting receive with MACH_RCV_PORT_DIED: later messages reach the registrant', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 1);
    const port = await server.allocatePort();
    const rescue = await server.allocatePort();
    expect(await server.requestNotification(port, MACH_NOTIFY_PORT_DESTROYED, 0, rescue, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
    const client = await newTask(kernel, 0);
    await giveSend(server, port, client);
    const waiting = kernel.mach.mach_msg(server, null, MACH_RCV_MSG, 0, 0, port, 0);
    await server.portType(port);
    await server.destroyPort(port);
    expect(await waiting).toEqual({ kr: MACH_RCV_PORT_DIED });
    const rescued = (await notification(server, rescue)).ports[0]!.name;
    await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 9 });
    expect(await notification(server, rescued)).toMatchObject({ id: 9, localPort: rescued });
  });

  it('a send-once right destroyed unused sends MACH_NOTIFY_SEND_ONCE: deallocated, or with its task', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const holders = [await newTask(kernel, 1), await newTask(kernel, 1)];
    for (const holder of holders) {
      await holder.insertRight(0x3001, await server.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE), MACH_MSG_TYPE_MOVE_SEND_ONCE);
    }
    await holders[0]!.deallocatePort(0x3001);
    expect(await notification(server, port)).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: port });
    await holders[1]!.terminate();
    expect(await notification(server, port)).toMatchObject({ id: MACH_NOTIFY_SEND_ONCE, localPort: port });
    await rejectsWith(server.receive(port, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('a name with a dead-name request that is deallocated sends MACH_NOTIFY_PORT_DELETED instead', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const client = await newTask(kernel, 1);
    await giveSend(server, port, client);
    const notify = await requestDeadName(client, SEND);
    await client.deallocatePort(SEND);
    expect(await notification(client, notify)).toMatchObject({ id: MACH_NOTIFY_PORT_DELETED, body: word(SEND) });
    await server.destroyPort(port);
    await rejectsWith(client.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
  });

  it('a dead-name request with a non-zero sync on a name that is already dead is answered at once, adding a uref', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 0);
    const port = await server.allocatePort();
    const client = await newTask(kernel, 1);
    await giveSend(server, port, client);
    await server.destroyPort(port);
    // Across processes the death reaches the client's node asynchronously, as across NORMA nodes.
    await vi.waitFor(async () => expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME));
    const notify = await requestDeadName(client, SEND, 1);
    expect(await notification(client, notify)).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME, body: word(SEND) });
    expect(await client.getRefs(SEND, MACH_PORT_RIGHT_DEAD_NAME)).toBe(2);
  });

  it('dead-name requests travel with a migrating port: made while it was on node 0, answered when it dies on node 2', async () => {
    const kernel = await bootKernel({ nodes: 3 });
    const first = await newTask(kernel, 0);
    const port = await first.allocatePort();
    const client = await newTask(kernel, 1);
    await giveSend(first, port, client);
    const notify = await requestDeadName(client, SEND);
    const last = await newTask(kernel, 2);
    await last.insertRight(0x7001, await first.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE), MACH_MSG_TYPE_MOVE_RECEIVE);
    // The queue has arrived on node 2 once a message sent now is received there.
    await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 });
    expect((await last.receive(0x7001, { timeout: 5000 })).id).toBe(1);
    await last.terminate();
    expect(await notification(client, notify)).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME, body: word(SEND) });
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
  });
});

describe('a dying port', () => {
  it('destroys its queued messages and the rights in them: a send right in a queued message is released (no-senders fires)', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 1);
    const port = await server.allocatePort();
    const client = await newTask(kernel, 0);
    await giveSend(server, port, client);
    const carried = await client.allocatePort();
    const notify = await client.allocatePort();
    // The only send right to `carried` travels in a message queued at `port`.
    await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ports: [{ name: carried, disposition: MACH_MSG_TYPE_MAKE_SEND }] });
    expect(await client.requestNotification(carried, MACH_NOTIFY_NO_SENDERS, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
    await rejectsWith(client.receive(notify, { timeout: 0 }), MACH_RCV_TIMED_OUT);
    await server.destroyPort(port);
    expect(await notification(client, notify)).toMatchObject({ id: MACH_NOTIFY_NO_SENDERS, body: word(1) });
  });

  itInOneProcess("a remote sender gets the credit window and its proxy's queue ahead of the port's queue limit")('fails a sender blocked on its full queue with MACH_SEND_INVALID_DEST and its own waiting receiver with MACH_RCV_PORT_DIED', async () => {
    const kernel = await bootKernel();
    const server = await newTask(kernel, 1);
    const port = await server.allocatePort();
    await server.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    const client = await newTask(kernel, 0);
    await giveSend(server, port, client);
    await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 });
    const blocked = kernel.mach.mach_msg(client, { remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 2 }, MACH_SEND_MSG);
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_SEND);

    const other = await server.allocatePort();
    const waiting = kernel.mach.mach_msg(server, null, MACH_RCV_MSG, 0, 0, other, 0);
    await server.portType(other);
    await server.destroyPort(other);
    expect(await waiting).toEqual({ kr: MACH_RCV_PORT_DIED });

    await server.destroyPort(port);
    expect(await blocked).toEqual({ kr: MACH_SEND_INVALID_DEST });
    expect(await client.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME);
  });
});

describe('norma_task_teleport', () => {
  it('kills the old task kernel port: a send right to it held elsewhere becomes a dead name, with its dead-name notification', async () => {
    const kernel = await bootKernel();
    const parent = await newTask(kernel, 0);
    const watcher = await newTask(kernel, 1);
    const kernelPort = await parent.specialPort(TASK_KERNEL_PORT);
    expect(kernelPort).toBe(await parent.self());
    await watcher.insertRight(0x4001, await parent.extractRight(kernelPort, MACH_MSG_TYPE_COPY_SEND), MACH_MSG_TYPE_MOVE_SEND);
    expect(await watcher.portType(0x4001)).toBe(MACH_PORT_TYPE_SEND);
    const notify = await requestDeadName(watcher, 0x4001);

    const reply = await kernel.mach.norma_task_teleport(parent, true, 1);
    assert(reply.child_task !== undefined);
    const child = reply.child_task;
    expect(await notification(watcher, notify)).toMatchObject({ id: MACH_NOTIFY_DEAD_NAME, body: word(0x4001) });
    expect(await watcher.portType(0x4001)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    // The child's own kernel port is alive and different: its right goes in beside the dead name.
    await watcher.insertRight(0x4101, await child.extractRight(await child.self(), MACH_MSG_TYPE_COPY_SEND), MACH_MSG_TYPE_MOVE_SEND);
    expect(await watcher.portType(0x4101)).toBe(MACH_PORT_TYPE_SEND);
  });
});
