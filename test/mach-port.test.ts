/**
 * mach_port_* through real nodes, on both faces: a task's port name space maps names to rights
 * (receive, send with user references, send-once, port set, dead name). Every rejected call is
 * checked to change nothing: mach_port_names and every get_refs before and after.
 */
import { assert, describe, expect, it, vi } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_INVALID_NAME, KERN_INVALID_RIGHT,
  KERN_INVALID_VALUE, KERN_NAME_EXISTS, KERN_NOT_IN_SET, KERN_RIGHT_EXISTS, KERN_SUCCESS,
  KERN_UREFS_OVERFLOW, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE,
  MACH_NOTIFY_DEAD_NAME, MACH_NOTIFY_NO_SENDERS, MACH_NOTIFY_PORT_DESTROYED, MACH_PORT_DEAD,
  MACH_PORT_LIMITS_INFO, MACH_PORT_NULL, MACH_PORT_QLIMIT_DEFAULT, MACH_PORT_QLIMIT_MAX,
  MACH_PORT_RECEIVE_STATUS, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_PORT_SET,
  MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_SEND_ONCE, MACH_PORT_TYPE_DEAD_NAME,
  MACH_PORT_TYPE_DNREQUEST, MACH_PORT_TYPE_PORT_SET, MACH_PORT_TYPE_RECEIVE, MACH_PORT_TYPE_SEND,
  MACH_PORT_TYPE_SEND_ONCE, MACH_PORT_UREFS_MAX, MACH_RCV_INVALID_NAME, MACH_RCV_MSG, MACH_RCV_TIMEOUT,
  MACH_SEND_INVALID_DEST, MACH_SEND_TIMED_OUT,
  MACH_SEND_MSG, type Kernel, type Task,
} from 'norma-rt';
import { bootKernel, itInOneProcess, rejectsWith } from './helpers.js';

const RIGHTS = [
  MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND_ONCE, MACH_PORT_RIGHT_PORT_SET,
  MACH_PORT_RIGHT_DEAD_NAME,
];

/** Everything observable about a name space: names, types, and every right's user references. */
async function spaceState(task: Task) {
  const { kr, names, types } = await task.kernel.mach.mach_port_names(task);
  expect(kr).toBe(KERN_SUCCESS);
  const refs: number[][] = [];
  for (const name of names) refs.push(await Promise.all(RIGHTS.map((right) => task.getRefs(name, right))));
  return { names, types, refs };
}

/** A fresh task on `node` (empty memory) and a receive right in it with a send right under the same name. */
async function taskWithPort(kernel: Kernel, node = 0) {
  const task = await kernel.bootstrapTask.createOn(node, { inheritMemory: false });
  const port = await task.allocatePort();
  await task.insertRight(port, port, MACH_MSG_TYPE_MAKE_SEND);
  return { task, port };
}

describe('mach_port_allocate', () => {
  it('gives a new task a space holding only its own task-self send right', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const self = await task.self();
    expect(await kernel.mach.mach_port_names(task)).toEqual({ kr: KERN_SUCCESS, names: [self], types: [MACH_PORT_TYPE_SEND] });
    expect(await kernel.mach.mach_task_self(task)).toEqual({ kr: KERN_SUCCESS, name: self });
  });

  it('makes a receive right, a port set and a dead name with 1 uref under new distinct names, through both faces', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const receive = await kernel.mach.mach_port_allocate(task, MACH_PORT_RIGHT_RECEIVE);
    const set = await kernel.mach.mach_port_allocate(task, MACH_PORT_RIGHT_PORT_SET);
    const dead = await task.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    const plain = await task.allocatePort();
    expect(receive.kr).toBe(KERN_SUCCESS);
    expect(set.kr).toBe(KERN_SUCCESS);
    const names = [receive.name, set.name, dead, plain];
    expect(new Set(names).size).toBe(4);
    for (const name of names) expect(name).not.toBe(MACH_PORT_NULL);

    expect(await kernel.mach.mach_port_type(task, receive.name)).toEqual({ kr: KERN_SUCCESS, ptype: MACH_PORT_TYPE_RECEIVE });
    expect(await task.portType(set.name)).toBe(MACH_PORT_TYPE_PORT_SET);
    expect(await task.portType(dead)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(await task.portType(plain)).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(await task.getRefs(dead, MACH_PORT_RIGHT_DEAD_NAME)).toBe(1);
    expect(await task.getRefs(receive.name, MACH_PORT_RIGHT_RECEIVE)).toBe(1);
    expect(await task.getRefs(set.name, MACH_PORT_RIGHT_PORT_SET)).toBe(1);
    // A new port: no send rights, make-send count 0, sequence number 0, the default queue limit, no messages.
    expect(await task.portAttributes(receive.name, MACH_PORT_RECEIVE_STATUS)).toMatchObject({
      mps_pset: MACH_PORT_NULL, mps_seqno: 0, mps_mscount: 0, mps_qlimit: MACH_PORT_QLIMIT_DEFAULT, mps_msgcount: 0,
      mps_srights: false, mps_pdrequest: false, mps_nsrequest: false,
    });
    const { names: listed, types } = await task.portNames();
    expect(listed).toEqual([...listed].sort((a, b) => a - b));
    for (const [name, type] of [[receive.name, MACH_PORT_TYPE_RECEIVE], [set.name, MACH_PORT_TYPE_PORT_SET],
      [dead, MACH_PORT_TYPE_DEAD_NAME]] as const) {
      expect(types[listed.indexOf(name)]).toBe(type);
    }
  });

  it('returns KERN_INVALID_VALUE for SEND, SEND_ONCE or an unknown right and changes nothing', async () => {
    const kernel = await bootKernel();
    const { task } = await taskWithPort(kernel, 1);
    const before = await spaceState(task);
    for (const right of [MACH_PORT_RIGHT_SEND, MACH_PORT_RIGHT_SEND_ONCE, 5, -1, 1.5]) {
      expect(await kernel.mach.mach_port_allocate(task, right)).toEqual({ kr: KERN_INVALID_VALUE, name: MACH_PORT_NULL });
      await rejectsWith(task.allocatePort(right), KERN_INVALID_VALUE);
    }
    expect(await spaceState(task)).toEqual(before);
  });
});

describe('names are capabilities', () => {
  it('a guessed name gives KERN_INVALID_NAME everywhere and MACH_SEND_INVALID_DEST for a send', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const before = await spaceState(task);
    const guesses = [port + 1, port + 256, 0x7777_0001, 3];
    for (const guess of guesses) {
      expect(before.names).not.toContain(guess);
      expect(await kernel.mach.mach_port_type(task, guess)).toEqual({ kr: KERN_INVALID_NAME, ptype: 0 });
      expect(await kernel.mach.mach_port_get_refs(task, guess, MACH_PORT_RIGHT_SEND)).toEqual({ kr: KERN_INVALID_NAME, refs: 0 });
      expect(await kernel.mach.mach_port_deallocate(task, guess)).toBe(KERN_INVALID_NAME);
      expect(await kernel.mach.mach_port_destroy(task, guess)).toBe(KERN_INVALID_NAME);
      expect(await kernel.mach.mach_port_mod_refs(task, guess, MACH_PORT_RIGHT_SEND, 1)).toBe(KERN_INVALID_NAME);
      expect((await kernel.mach.mach_port_extract_right(task, guess, MACH_MSG_TYPE_COPY_SEND)).kr).toBe(KERN_INVALID_NAME);
      expect(await kernel.mach.mach_port_insert_right(task, 0x9001, guess, MACH_MSG_TYPE_COPY_SEND)).toBe(KERN_INVALID_NAME);
      expect((await kernel.mach.mach_msg(task, { remotePort: guess, remoteDisposition: MACH_MSG_TYPE_COPY_SEND }, MACH_SEND_MSG)).kr)
        .toBe(MACH_SEND_INVALID_DEST);
      await rejectsWith(task.portType(guess), KERN_INVALID_NAME);
      await rejectsWith(task.send({ remotePort: guess, remoteDisposition: MACH_MSG_TYPE_COPY_SEND }), MACH_SEND_INVALID_DEST);
    }
    expect(await spaceState(task)).toEqual(before);
  });

  it('a name is only good in its own task: the same number in another task reaches nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 0);
    const other = await kernel.bootstrapTask.createOn(1);
    expect((await other.portNames()).names).not.toContain(port);
    await rejectsWith(other.portType(port), KERN_INVALID_NAME);
    await rejectsWith(other.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_COPY_SEND }), MACH_SEND_INVALID_DEST);
    await rejectsWith(other.receive(port, { timeout: 0 }), MACH_RCV_INVALID_NAME);
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE);
  });

  it('allocate, destroy, allocate again: the old name stays invalid and the new one differs', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const first = await task.allocatePort();
    await task.destroyPort(first);
    const second = await task.allocatePort();
    expect(second).not.toBe(first);
    await rejectsWith(task.portType(first), KERN_INVALID_NAME);
    await rejectsWith(task.receive(first, { timeout: 0 }), MACH_RCV_INVALID_NAME);
    // Many reuses of the slot still never bring the first name back.
    const seen = new Set([first, second]);
    let last = second;
    for (let i = 0; i < 20; i++) {
      await task.destroyPort(last);
      last = await task.allocatePort();
      expect(seen.has(last)).toBe(false);
      seen.add(last);
    }
    await rejectsWith(task.portType(first), KERN_INVALID_NAME);
  });
});

describe('mach_port_deallocate', () => {
  it('drops one uref of a send right and frees the name at 0; a dead name likewise', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const holder = await kernel.bootstrapTask.createOn(0);
    await holder.insertRight(0x1001, await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    await holder.modRefs(0x1001, MACH_PORT_RIGHT_SEND, 2);
    expect(await holder.getRefs(0x1001, MACH_PORT_RIGHT_SEND)).toBe(3);
    expect(await kernel.mach.mach_port_deallocate(holder, 0x1001)).toBe(KERN_SUCCESS);
    expect(await holder.getRefs(0x1001, MACH_PORT_RIGHT_SEND)).toBe(2);
    await holder.deallocatePort(0x1001);
    await holder.deallocatePort(0x1001);
    await rejectsWith(holder.portType(0x1001), KERN_INVALID_NAME);

    const dead = await holder.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    await holder.modRefs(dead, MACH_PORT_RIGHT_DEAD_NAME, 1);
    await holder.deallocatePort(dead);
    expect(await holder.getRefs(dead, MACH_PORT_RIGHT_DEAD_NAME)).toBe(1);
    await holder.deallocatePort(dead);
    await rejectsWith(holder.portType(dead), KERN_INVALID_NAME);
  });

  it('returns KERN_INVALID_RIGHT for a receive-only name or a port set and changes nothing', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const receive = await task.allocatePort();
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const before = await spaceState(task);
    expect(await kernel.mach.mach_port_deallocate(task, receive)).toBe(KERN_INVALID_RIGHT);
    await rejectsWith(task.deallocatePort(set), KERN_INVALID_RIGHT);
    expect(await spaceState(task)).toEqual(before);
  });
});

describe('mach_port_destroy', () => {
  it('removes every right under the name: the port dies and a send right elsewhere turns into a dead name', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 0);
    const holder = await kernel.bootstrapTask.createOn(1);
    await holder.insertRight(0x1001, await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    expect(await kernel.mach.mach_port_destroy(task, port)).toBe(KERN_SUCCESS);
    await rejectsWith(task.portType(port), KERN_INVALID_NAME);
    // Across processes the death reaches the holder's node asynchronously, as across NORMA nodes.
    await vi.waitFor(async () => expect(await holder.portType(0x1001)).toBe(MACH_PORT_TYPE_DEAD_NAME));
    await rejectsWith(holder.send({ remotePort: 0x1001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND }), MACH_SEND_INVALID_DEST);
    expect(await kernel.mach.mach_port_destroy(task, port)).toBe(KERN_INVALID_NAME);
  });
});

describe('mach_port_mod_refs and mach_port_get_refs', () => {
  it('adds and removes send urefs up to MACH_PORT_UREFS_MAX; 0 frees the name', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    expect(await kernel.mach.mach_port_get_refs(task, port, MACH_PORT_RIGHT_SEND)).toEqual({ kr: KERN_SUCCESS, refs: 1 });
    expect(await kernel.mach.mach_port_mod_refs(task, port, MACH_PORT_RIGHT_SEND, MACH_PORT_UREFS_MAX - 1)).toBe(KERN_SUCCESS);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(MACH_PORT_UREFS_MAX);
    await task.modRefs(port, MACH_PORT_RIGHT_SEND, -(MACH_PORT_UREFS_MAX - 2));
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(2);
    await task.modRefs(port, MACH_PORT_RIGHT_SEND, -2);
    // The receive right keeps the name; only the send right went.
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_RECEIVE);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(0);
  });

  it('get_refs answers 1 for receive, port-set and send-once rights and 0 for a right the name does not hold', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const once = await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    await task.insertRight(0x2001, once, MACH_MSG_TYPE_MOVE_SEND_ONCE);
    expect(await task.portType(0x2001)).toBe(MACH_PORT_TYPE_SEND_ONCE);
    expect(await task.getRefs(0x2001, MACH_PORT_RIGHT_SEND_ONCE)).toBe(1);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_RECEIVE)).toBe(1);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_PORT_SET)).toBe(0);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_DEAD_NAME)).toBe(0);
    expect(await task.getRefs(0x2001, MACH_PORT_RIGHT_SEND)).toBe(0);
  });

  it('returns KERN_UREFS_OVERFLOW past MACH_PORT_UREFS_MAX, KERN_INVALID_VALUE below 0 or for a bad right, KERN_INVALID_RIGHT for a right the name lacks, and changes nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const receiveOnly = await task.allocatePort();
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    await task.modRefs(port, MACH_PORT_RIGHT_SEND, 9);
    const before = await spaceState(task);
    const cases: Array<[number, number, number, number]> = [
      [port, MACH_PORT_RIGHT_SEND, MACH_PORT_UREFS_MAX, KERN_UREFS_OVERFLOW],
      [port, MACH_PORT_RIGHT_SEND, -11, KERN_INVALID_VALUE],
      [port, MACH_PORT_RIGHT_SEND, 0.5, KERN_INVALID_VALUE],
      [port, 7, 1, KERN_INVALID_VALUE],
      [port, MACH_PORT_RIGHT_RECEIVE, 1, KERN_INVALID_VALUE],
      [port, MACH_PORT_RIGHT_RECEIVE, -2, KERN_INVALID_VALUE],
      [set, MACH_PORT_RIGHT_PORT_SET, 1, KERN_INVALID_VALUE],
      [receiveOnly, MACH_PORT_RIGHT_SEND, 1, KERN_INVALID_RIGHT],
      [receiveOnly, MACH_PORT_RIGHT_DEAD_NAME, 1, KERN_INVALID_RIGHT],
      [set, MACH_PORT_RIGHT_RECEIVE, -1, KERN_INVALID_RIGHT],
      [port, MACH_PORT_RIGHT_SEND_ONCE, -1, KERN_INVALID_RIGHT],
    ];
    for (const [name, right, delta, kr] of cases) {
      expect(await kernel.mach.mach_port_mod_refs(task, name, right, delta)).toBe(kr);
      await rejectsWith(task.modRefs(name, right, delta), kr);
    }
    expect(await kernel.mach.mach_port_get_refs(task, port, 9)).toEqual({ kr: KERN_INVALID_VALUE, refs: 0 });
    expect(await spaceState(task)).toEqual(before);
  });

  it('mod_refs −1 on a receive right destroys the port; the send right sharing its name becomes a dead name', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    await task.modRefs(port, MACH_PORT_RIGHT_SEND, 1);
    await task.modRefs(port, MACH_PORT_RIGHT_RECEIVE, -1);
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_DEAD_NAME);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_DEAD_NAME)).toBe(2);
  });
});

describe('mach_port_insert_right and mach_port_extract_right', () => {
  it('MAKE_SEND under the receive right own name adds a send right there, urefs counting up', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const port = await task.allocatePort();
    expect(await kernel.mach.mach_port_insert_right(task, port, port, MACH_MSG_TYPE_MAKE_SEND)).toBe(KERN_SUCCESS);
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_SEND | MACH_PORT_TYPE_RECEIVE);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(1);
    await task.insertRight(port, port, MACH_MSG_TYPE_MAKE_SEND);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(2);
    await task.insertRight(port, port, MACH_MSG_TYPE_COPY_SEND);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(3);
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_mscount: 2, mps_srights: true });
  });

  it('moves rights between tasks on different nodes with extract_right and insert_right, translating names', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 0);
    const other = await kernel.bootstrapTask.createOn(1);

    const send = await kernel.mach.mach_port_extract_right(task, port, MACH_MSG_TYPE_MAKE_SEND);
    expect(send).toMatchObject({ kr: KERN_SUCCESS, poly_poly: MACH_MSG_TYPE_PORT_SEND });
    assert(send.poly !== undefined);
    expect(await kernel.mach.mach_port_insert_right(other, 0x3001, send.poly, MACH_MSG_TYPE_MOVE_SEND)).toBe(KERN_SUCCESS);
    expect(send.poly.consumed).toBe(true);
    // An extracted right goes in once.
    expect(await kernel.mach.mach_port_insert_right(other, 0x3101, send.poly, MACH_MSG_TYPE_MOVE_SEND)).toBe(KERN_INVALID_CAPABILITY);
    expect(await other.portType(0x3001)).toBe(MACH_PORT_TYPE_SEND);

    const once = await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    expect(once.type).toBe(MACH_MSG_TYPE_PORT_SEND_ONCE);
    await other.insertRight(0x3201, once, MACH_MSG_TYPE_MOVE_SEND_ONCE);
    expect(await other.portType(0x3201)).toBe(MACH_PORT_TYPE_SEND_ONCE);

    // MOVE_SEND of the last uref takes the name out of the task; COPY_SEND leaves it.
    const copied = await other.extractRight(0x3001, MACH_MSG_TYPE_COPY_SEND);
    expect(await other.getRefs(0x3001, MACH_PORT_RIGHT_SEND)).toBe(1);
    const moved = await other.extractRight(0x3001, MACH_MSG_TYPE_MOVE_SEND);
    await rejectsWith(other.portType(0x3001), KERN_INVALID_NAME);
    // Both go back into the task that holds the receive right: they join its name.
    await task.insertRight(port, copied, MACH_MSG_TYPE_MOVE_SEND);
    await task.insertRight(port, moved, MACH_MSG_TYPE_MOVE_SEND);
    expect(await task.getRefs(port, MACH_PORT_RIGHT_SEND)).toBe(3);

    // The receive right itself: out of node 0's task, into node 1's, where messages now arrive.
    const receive = await task.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);
    expect(receive.type).toBe(MACH_MSG_TYPE_PORT_RECEIVE);
    expect(await task.portType(port)).toBe(MACH_PORT_TYPE_SEND);
    await other.insertRight(0x3301, receive, MACH_MSG_TYPE_MOVE_RECEIVE);
    expect(await other.portType(0x3301)).toBe(MACH_PORT_TYPE_RECEIVE);
    await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 31 });
    expect((await other.receive(0x3301, { timeout: 5000 })).id).toBe(31);
  });

  it('returns KERN_NAME_EXISTS, KERN_RIGHT_EXISTS, KERN_INVALID_VALUE, KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_INVALID_CAPABILITY and KERN_UREFS_OVERFLOW as Mach, changing nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const other = await task.allocatePort();
    const dead = await task.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    const receiveOnly = await task.allocatePort();
    const before = await spaceState(task);
    const cases: Array<[number, number, number, number]> = [
      [other, port, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_NAME_EXISTS], // name in use by another right
      [other, port, MACH_MSG_TYPE_COPY_SEND, KERN_RIGHT_EXISTS], // the port is named `port` here already (xnu checks this first)
      [0x4001, port, MACH_MSG_TYPE_COPY_SEND, KERN_RIGHT_EXISTS],
      [MACH_PORT_NULL, port, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_VALUE],
      [MACH_PORT_DEAD, port, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_VALUE],
      [0x4000, port, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_VALUE], // a name that cannot be chosen
      [-5, port, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_VALUE],
      [0x4001, port, 99, KERN_INVALID_VALUE],
      [0x4001, 0x7701, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_NAME],
      [0x4001, receiveOnly, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_RIGHT],
      [0x4001, port, MACH_MSG_TYPE_MOVE_SEND_ONCE, KERN_INVALID_RIGHT],
      [0x4001, dead, MACH_MSG_TYPE_COPY_SEND, KERN_INVALID_CAPABILITY],
    ];
    for (const [name, poly, polyPoly, kr] of cases) {
      expect(await kernel.mach.mach_port_insert_right(task, name, poly, polyPoly)).toBe(kr);
      await rejectsWith(task.insertRight(name, poly, polyPoly), kr);
    }
    expect(await kernel.mach.mach_port_extract_right(task, 0x7701, MACH_MSG_TYPE_COPY_SEND)).toEqual({ kr: KERN_INVALID_NAME });
    expect(await kernel.mach.mach_port_extract_right(task, receiveOnly, MACH_MSG_TYPE_MOVE_SEND)).toEqual({ kr: KERN_INVALID_RIGHT });
    expect(await kernel.mach.mach_port_extract_right(task, port, 99)).toEqual({ kr: KERN_INVALID_VALUE });
    await rejectsWith(task.extractRight(port, MACH_MSG_TYPE_MOVE_SEND_ONCE), KERN_INVALID_RIGHT);
    expect(await spaceState(task)).toEqual(before);

    // Overflow: a send right at MACH_PORT_UREFS_MAX takes no further right.
    await task.modRefs(port, MACH_PORT_RIGHT_SEND, MACH_PORT_UREFS_MAX - 1);
    const full = await spaceState(task);
    expect(await kernel.mach.mach_port_insert_right(task, port, port, MACH_MSG_TYPE_MAKE_SEND)).toBe(KERN_UREFS_OVERFLOW);
    expect(await spaceState(task)).toEqual(full);
  });

  it('a rejected insert of an extracted right leaves it with the caller, to insert elsewhere', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 0);
    const other = await kernel.bootstrapTask.createOn(1);
    const taken = await other.allocatePort();
    const right = await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND);
    const before = await spaceState(other);
    await rejectsWith(other.insertRight(taken, right, MACH_MSG_TYPE_MOVE_SEND), KERN_NAME_EXISTS);
    await rejectsWith(other.insertRight(0x100, right, MACH_MSG_TYPE_MOVE_SEND), KERN_INVALID_VALUE);
    expect(right.consumed).toBe(false);
    expect(await spaceState(other)).toEqual(before);
    await other.insertRight(0x5001, right, MACH_MSG_TYPE_MOVE_SEND);
    expect(await other.portType(0x5001)).toBe(MACH_PORT_TYPE_SEND);
    expect(right.consumed).toBe(true);
  });
});

describe('mach_port_move_member', () => {
  it('puts a receive right into a set, moves it to another set, takes it out with MACH_PORT_NULL', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const port = await task.allocatePort();
    const first = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const second = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    expect(await kernel.mach.mach_port_move_member(task, port, first)).toBe(KERN_SUCCESS);
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_pset: first });
    await task.moveMember(port, second);
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_pset: second });
    await task.moveMember(port, MACH_PORT_NULL);
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_pset: MACH_PORT_NULL });
  });

  it('returns KERN_NOT_IN_SET, KERN_INVALID_RIGHT and KERN_INVALID_NAME, changing nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const dead = await task.allocatePort(MACH_PORT_RIGHT_DEAD_NAME);
    const receive = await task.allocatePort();
    const before = await spaceState(task);
    const cases: Array<[number, number, number]> = [
      [receive, MACH_PORT_NULL, KERN_NOT_IN_SET],
      [dead, set, KERN_INVALID_RIGHT],
      [set, set, KERN_INVALID_RIGHT],
      [receive, port, KERN_INVALID_RIGHT],
      [0x7701, set, KERN_INVALID_NAME],
      [receive, 0x7701, KERN_INVALID_NAME],
    ];
    for (const [member, after, kr] of cases) {
      expect(await kernel.mach.mach_port_move_member(task, member, after)).toBe(kr);
      await rejectsWith(task.moveMember(member, after), kr);
    }
    expect(await spaceState(task)).toEqual(before);
  });
});

describe('mach_port_request_notification', () => {
  it('registers a dead-name request (MACH_PORT_TYPE_DNREQUEST) and swaps atomically, handing back the previous send-once right', async () => {
    const kernel = await bootKernel();
    const { task: server, port } = await taskWithPort(kernel, 0);
    const client = await kernel.bootstrapTask.createOn(1);
    const notify = await client.allocatePort();
    await client.insertRight(0x1001, await server.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);

    expect(await kernel.mach.mach_port_request_notification(client, 0x1001, MACH_NOTIFY_DEAD_NAME, 0, notify,
      MACH_MSG_TYPE_MAKE_SEND_ONCE)).toEqual({ kr: KERN_SUCCESS, previous: MACH_PORT_NULL });
    expect(await client.portType(0x1001)).toBe(MACH_PORT_TYPE_SEND + MACH_PORT_TYPE_DNREQUEST);
    const previous = await client.requestNotification(0x1001, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    expect(previous).not.toBe(MACH_PORT_NULL);
    expect(await client.portType(previous)).toBe(MACH_PORT_TYPE_SEND_ONCE);
    // Cancelling hands back the second registration and clears the bit.
    const second = await client.requestNotification(0x1001, MACH_NOTIFY_DEAD_NAME, 0, MACH_PORT_NULL, 0);
    expect(await client.portType(second)).toBe(MACH_PORT_TYPE_SEND_ONCE);
    expect(await client.portType(0x1001)).toBe(MACH_PORT_TYPE_SEND);
  });

  it('returns KERN_INVALID_VALUE, KERN_INVALID_NAME, KERN_INVALID_RIGHT and KERN_INVALID_CAPABILITY as Mach, changing nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const notify = await task.allocatePort();
    const set = await task.allocatePort(MACH_PORT_RIGHT_PORT_SET);
    const holder = await kernel.bootstrapTask.createOn(0);
    await holder.insertRight(0x1001, await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    const before = await spaceState(task);
    const cases: Array<[Task, number, number, number, number, number, number]> = [
      [task, port, 60, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_VALUE],
      [task, port, MACH_NOTIFY_PORT_DESTROYED, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_VALUE],
      [task, 0x7701, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_NAME],
      [task, set, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_RIGHT],
      [holder, 0x1001, MACH_NOTIFY_NO_SENDERS, 0, 0x1001, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_RIGHT],
      [holder, 0x1001, MACH_NOTIFY_PORT_DESTROYED, 0, 0x1001, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_RIGHT],
      [task, port, MACH_NOTIFY_NO_SENDERS, 0, 0x7701, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_CAPABILITY],
      [task, port, MACH_NOTIFY_NO_SENDERS, 0, notify, MACH_MSG_TYPE_MAKE_SEND, KERN_INVALID_CAPABILITY],
      [task, port, MACH_NOTIFY_DEAD_NAME, 0, set, MACH_MSG_TYPE_MAKE_SEND_ONCE, KERN_INVALID_CAPABILITY],
    ];
    const holderBefore = await spaceState(holder);
    for (const [target, name, variant, sync, notifyName, poly, kr] of cases) {
      expect(await kernel.mach.mach_port_request_notification(target, name, variant, sync, notifyName, poly))
        .toEqual({ kr, previous: MACH_PORT_NULL });
      await rejectsWith(target.requestNotification(name, variant, sync, notifyName, poly), kr);
    }
    expect(await spaceState(task)).toEqual(before);
    expect(await spaceState(holder)).toEqual(holderBefore);
  });
});

describe('mach_port_get_attributes and mach_port_set_attributes (MACH_PORT_LIMITS_INFO)', () => {
  it('reads the default queue limit and sets it from 0 to MACH_PORT_QLIMIT_MAX, through both faces', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const port = await task.allocatePort();
    expect(await kernel.mach.mach_port_get_attributes(task, port, MACH_PORT_LIMITS_INFO))
      .toEqual({ kr: KERN_SUCCESS, port_info: { queue_limit: MACH_PORT_QLIMIT_DEFAULT } });
    for (const limit of [MACH_PORT_QLIMIT_MAX, 0, 1]) {
      expect(await kernel.mach.mach_port_set_attributes(task, port, MACH_PORT_LIMITS_INFO, { queue_limit: limit })).toBe(KERN_SUCCESS);
      expect(await task.portAttributes(port, MACH_PORT_LIMITS_INFO)).toEqual({ queue_limit: limit });
    }
    await task.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 3 });
    expect(await task.portAttributes(port, MACH_PORT_RECEIVE_STATUS)).toMatchObject({ mps_qlimit: 3 });
  });

  it('returns KERN_INVALID_VALUE for a limit out of range, KERN_INVALID_ARGUMENT for another flavor, KERN_INVALID_RIGHT and KERN_INVALID_NAME, changing nothing', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 1);
    const holder = await kernel.bootstrapTask.createOn(0);
    await holder.insertRight(0x1001, await task.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    await task.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 7 });
    const before = await spaceState(task);
    for (const info of [{ queue_limit: MACH_PORT_QLIMIT_MAX + 1 }, { queue_limit: -1 }, { queue_limit: 2.5 }, {}, null]) {
      expect(await kernel.mach.mach_port_set_attributes(task, port, MACH_PORT_LIMITS_INFO, info)).toBe(KERN_INVALID_VALUE);
      await rejectsWith(task.setPortAttributes(port, MACH_PORT_LIMITS_INFO, info), KERN_INVALID_VALUE);
    }
    expect(await kernel.mach.mach_port_set_attributes(task, port, 99, { queue_limit: 1 })).toBe(KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.mach_port_get_attributes(task, port, 99)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await kernel.mach.mach_port_set_attributes(holder, 0x1001, MACH_PORT_LIMITS_INFO, { queue_limit: 1 })).toBe(KERN_INVALID_RIGHT);
    expect(await kernel.mach.mach_port_get_attributes(holder, 0x1001, MACH_PORT_LIMITS_INFO)).toEqual({ kr: KERN_INVALID_RIGHT });
    expect(await kernel.mach.mach_port_get_attributes(task, 0x7701, MACH_PORT_LIMITS_INFO)).toEqual({ kr: KERN_INVALID_NAME });
    await rejectsWith(task.setPortAttributes(0x7701, MACH_PORT_LIMITS_INFO, { queue_limit: 1 }), KERN_INVALID_NAME);
    expect(await task.portAttributes(port, MACH_PORT_LIMITS_INFO)).toEqual({ queue_limit: 7 });
    expect(await spaceState(task)).toEqual(before);
  });

  itInOneProcess("a remote sender gets the credit window and its proxy's queue ahead of the port's queue limit")('the queue limit holds wherever the port moves: set on node 0, enforced for a sender after the receive right went to node 1', async () => {
    const kernel = await bootKernel();
    const { task, port } = await taskWithPort(kernel, 0);
    await task.setPortAttributes(port, MACH_PORT_LIMITS_INFO, { queue_limit: 2 });
    const receiver = await kernel.bootstrapTask.createOn(1);
    await receiver.insertRight(0x2001, await task.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE), MACH_MSG_TYPE_MOVE_RECEIVE);
    expect(await receiver.portAttributes(0x2001, MACH_PORT_LIMITS_INFO)).toEqual({ queue_limit: 2 });
    for (const id of [1, 2]) await task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id });
    await rejectsWith(task.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 3 }, { timeout: 10 }),
      MACH_SEND_TIMED_OUT);
    const got = await kernel.mach.mach_msg(receiver, null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, 0x2001, 5000);
    expect(got.msg?.id).toBe(1);
  });
});
