/**
 * Special and registered ports: task_get_special_port / task_set_special_port (TASK_KERNEL_PORT,
 * TASK_HOST_PORT, TASK_EXCEPTION_PORT, TASK_BOOTSTRAP_PORT), mach_ports_register /
 * mach_ports_lookup, and what task_create and the norma_task_* calls give the child: its own
 * task-self right and the parent's bootstrap, host, exception and registered ports, the same
 * ports, named in the child's space on the child's node.
 */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_INVALID_NAME, KERN_INVALID_RIGHT, KERN_NAME_EXISTS, KERN_RIGHT_EXISTS,
  KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_SEND,
  MACH_PORT_DEAD, MACH_PORT_NULL, MACH_PORT_RIGHT_SEND, MACH_PORT_TYPE_SEND,
  TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_HOST_PORT, TASK_KERNEL_PORT, TASK_SAMPLE_PORT, type Kernel,
  type Task,
} from 'norma-rt';
import { bootKernel, rejectsWith } from './helpers.js';

async function spaceState(task: Task) {
  const { names, types } = await task.portNames();
  const refs = await Promise.all(names.map((name) => task.getRefs(name, MACH_PORT_RIGHT_SEND)));
  return { names, types, refs };
}

/** A receive right in `owner` and a send right to it in `holder` under `name`. */
async function sendRightTo(owner: Task, holder: Task, name: number): Promise<number> {
  const port = await owner.allocatePort();
  await holder.insertRight(name, await owner.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
  return port;
}

describe('task_get_special_port and task_set_special_port', () => {
  it('TASK_KERNEL_PORT is mach_task_self; the bootstrap task has a host port and no bootstrap or exception port', async () => {
    const kernel = await bootKernel();
    const task = kernel.bootstrapTask;
    const self = await task.self();
    expect(await kernel.mach.task_get_special_port(task, TASK_KERNEL_PORT)).toEqual({ kr: KERN_SUCCESS, special_port: self });
    // Every get hands out one more send right, merged into the one name.
    expect(await task.getRefs(self, MACH_PORT_RIGHT_SEND)).toBe(2);
    const host = await task.specialPort(TASK_HOST_PORT);
    expect(host).not.toBe(MACH_PORT_NULL);
    expect(await task.portType(host)).toBe(MACH_PORT_TYPE_SEND);
    expect(await task.specialPort(TASK_HOST_PORT)).toBe(host);
    expect(await task.specialPort(TASK_BOOTSTRAP_PORT)).toBe(MACH_PORT_NULL);
    expect(await task.specialPort(TASK_EXCEPTION_PORT)).toBe(MACH_PORT_NULL);
  });

  it('sets the bootstrap and exception ports to copies of send rights, and clears them with MACH_PORT_NULL', async () => {
    const kernel = await bootKernel();
    const owner = await kernel.bootstrapTask.createOn(1);
    const task = await kernel.bootstrapTask.createOn(0);
    const bootstrap = await sendRightTo(owner, task, 0x1001);
    await sendRightTo(owner, task, 0x2001);
    expect(await kernel.mach.task_set_special_port(task, TASK_BOOTSTRAP_PORT, 0x1001)).toBe(KERN_SUCCESS);
    await task.setSpecialPort(TASK_EXCEPTION_PORT, 0x2001);
    // COPY_SEND: the task's own right is untouched.
    expect(await task.getRefs(0x1001, MACH_PORT_RIGHT_SEND)).toBe(1);
    await task.deallocatePort(0x1001);
    // The slot keeps its own right: get names it afresh, and it reaches the owner's port.
    const got = await task.specialPort(TASK_BOOTSTRAP_PORT);
    expect(await task.portType(got)).toBe(MACH_PORT_TYPE_SEND);
    await task.send({ remotePort: got, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 4 });
    expect(await owner.receive(bootstrap, { timeout: 5000 })).toMatchObject({ id: 4 });
    expect(await task.specialPort(TASK_EXCEPTION_PORT)).toBe(0x2001);

    await task.setSpecialPort(TASK_BOOTSTRAP_PORT, MACH_PORT_NULL);
    expect(await kernel.mach.task_get_special_port(task, TASK_BOOTSTRAP_PORT)).toEqual({ kr: KERN_SUCCESS, special_port: MACH_PORT_NULL });
  });

  it('returns KERN_INVALID_ARGUMENT for an unknown port, KERN_INVALID_NAME and KERN_INVALID_RIGHT for a name without a send right, changing nothing', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const receiveOnly = await task.allocatePort();
    const before = await spaceState(task);
    const bootstrap = await task.specialPort(TASK_BOOTSTRAP_PORT);
    for (const which of [0, 7, 99, 1.5]) {
      expect(await kernel.mach.task_get_special_port(task, which)).toEqual({ kr: KERN_INVALID_ARGUMENT, special_port: MACH_PORT_NULL });
      expect(await kernel.mach.task_set_special_port(task, which, MACH_PORT_NULL)).toBe(KERN_INVALID_ARGUMENT);
      await rejectsWith(task.specialPort(which), KERN_INVALID_ARGUMENT);
    }
    expect(await kernel.mach.task_set_special_port(task, TASK_BOOTSTRAP_PORT, 0x7701)).toBe(KERN_INVALID_NAME);
    await rejectsWith(task.setSpecialPort(TASK_BOOTSTRAP_PORT, receiveOnly), KERN_INVALID_RIGHT);
    expect(await task.specialPort(TASK_BOOTSTRAP_PORT)).toBe(bootstrap);
    expect(await spaceState(task)).toEqual(before);
  });
});

describe('mach_ports_register and mach_ports_lookup', () => {
  it('registers up to 3 send rights; lookup names them in the task, padding with MACH_PORT_NULL', async () => {
    const kernel = await bootKernel();
    const owner = await kernel.bootstrapTask.createOn(1);
    const task = await kernel.bootstrapTask.createOn(0);
    const ports = [await sendRightTo(owner, task, 0x1001), await sendRightTo(owner, task, 0x2001)];
    expect(await kernel.mach.mach_ports_lookup(task)).toEqual({
      kr: KERN_SUCCESS, init_port_set: [MACH_PORT_NULL, MACH_PORT_NULL, MACH_PORT_NULL], init_port_count: 3,
    });
    expect(await kernel.mach.mach_ports_register(task, [0x1001, 0x2001])).toBe(KERN_SUCCESS);
    expect(await task.registeredPorts()).toEqual([0x1001, 0x2001, MACH_PORT_NULL]);
    await task.send({ remotePort: 0x2001, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 2 });
    expect(await owner.receive(ports[1]!, { timeout: 5000 })).toMatchObject({ id: 2 });
    await task.registerPorts([0x2001, MACH_PORT_NULL, 0x1001]);
    expect(await task.registeredPorts()).toEqual([0x2001, MACH_PORT_NULL, 0x1001]);
  });

  it('returns KERN_INVALID_ARGUMENT for more than 3 and KERN_INVALID_NAME / KERN_INVALID_RIGHT for a bad name, keeping the registration', async () => {
    const kernel = await bootKernel();
    const task = await kernel.bootstrapTask.createOn(1);
    const owner = await kernel.bootstrapTask.createOn(0);
    await sendRightTo(owner, task, 0x1001);
    const receiveOnly = await task.allocatePort();
    await task.registerPorts([0x1001]);
    const registered = await task.registeredPorts();
    const before = await spaceState(task);
    expect(await kernel.mach.mach_ports_register(task, [0x1001, 0x1001, 0x1001, 0x1001])).toBe(KERN_INVALID_ARGUMENT);
    await rejectsWith(task.registerPorts([0x1001, 0x1001, 0x1001, 0x1001]), KERN_INVALID_ARGUMENT);
    expect(await kernel.mach.mach_ports_register(task, [0x1001, 0x7701])).toBe(KERN_INVALID_NAME);
    await rejectsWith(task.registerPorts([receiveOnly]), KERN_INVALID_RIGHT);
    expect(await spaceState(task)).toEqual(before);
    expect(await task.registeredPorts()).toEqual(registered);
  });
});

type Create = (kernel: Kernel, parent: Task) => Promise<Task>;

const creators: Array<[string, number, Create]> = [
  ['task_create', 0, async (kernel, parent) => {
    const reply = await kernel.mach.task_create(parent, null, 0, true);
    expect(reply.kr).toBe(KERN_SUCCESS);
    assert(reply.child_task !== undefined);
    return reply.child_task;
  }],
  ['Task.create', 0, (_kernel, parent) => parent.create()],
  ['norma_task_create', 1, async (kernel, parent) => {
    const reply = await kernel.mach.norma_task_create(parent, true, 1);
    assert(reply.child_task !== undefined);
    return reply.child_task;
  }],
  ['Task.createOn', 1, (_kernel, parent) => parent.createOn(1)],
  ['norma_task_clone', 1, async (kernel, parent) => {
    const reply = await kernel.mach.norma_task_clone(parent, true, 1);
    assert(reply.child_task !== undefined);
    return reply.child_task;
  }],
  ['Task.clone', 1, (_kernel, parent) => parent.clone(1)],
  ['norma_task_teleport', 1, async (kernel, parent) => {
    const reply = await kernel.mach.norma_task_teleport(parent, true, 1);
    assert(reply.child_task !== undefined);
    return reply.child_task;
  }],
  ['Task.teleport', 1, (_kernel, parent) => parent.teleport(1)],
];

describe.each(creators)('ports a child gets from %s', (call, childNode, create) => {
  it('its own task-self right, and the parent bootstrap, exception, sample, host and registered ports, the same ports, on the child node', async () => {
    const kernel = await bootKernel();
    // The receive rights stay with a third task, so even a teleported parent's ports can be checked.
    const owner = await kernel.bootstrapTask.createOn(1);
    const parent = await kernel.bootstrapTask.createOn(0);
    const bootstrap = await sendRightTo(owner, parent, 0x1001);
    const exception = await sendRightTo(owner, parent, 0x2001);
    const sample = await sendRightTo(owner, parent, 0x2101);
    const registered = [await sendRightTo(owner, parent, 0x3001), await sendRightTo(owner, parent, 0x4001),
      await sendRightTo(owner, parent, 0x5001)];
    await parent.setSpecialPort(TASK_BOOTSTRAP_PORT, 0x1001);
    await parent.setSpecialPort(TASK_EXCEPTION_PORT, 0x2001);
    await parent.setSpecialPort(TASK_SAMPLE_PORT, 0x2101);
    await parent.registerPorts([0x3001, 0x4001, 0x5001]);
    const parentSelf = await parent.self();
    const parentKernelPort = await parent.extractRight(parentSelf, MACH_MSG_TYPE_COPY_SEND);

    const child = await create(kernel, parent);
    expect(child.node).toBe(childNode);
    expect(child.id).not.toBe(parent.id);

    // Its own task-self right: a port the parent's kernel-port right is not.
    const self = await child.self();
    expect(self).not.toBe(MACH_PORT_NULL);
    expect(await child.specialPort(TASK_KERNEL_PORT)).toBe(self);
    expect(await child.portType(self)).toBe(MACH_PORT_TYPE_SEND);
    if (call.includes('teleport')) {
      // The parent is gone: its kernel port with it.
      await rejectsWith(child.insertRight(0x6001, parentKernelPort, MACH_MSG_TYPE_MOVE_SEND), KERN_INVALID_CAPABILITY);
    } else {
      // A right to the parent's kernel port goes in beside the child's own: a different port.
      expect(await kernel.mach.mach_port_insert_right(child, self, parentKernelPort, MACH_MSG_TYPE_MOVE_SEND)).toBe(KERN_NAME_EXISTS);
      await child.insertRight(0x6001, parentKernelPort, MACH_MSG_TYPE_MOVE_SEND);
      expect(await child.portType(0x6001)).toBe(MACH_PORT_TYPE_SEND);
    }

    // Bootstrap, exception and registered ports: the parent's ports, proved by sending through
    // the child's names and receiving on the owner's receive rights.
    const childBootstrap = await child.specialPort(TASK_BOOTSTRAP_PORT);
    const childException = await child.specialPort(TASK_EXCEPTION_PORT);
    const childSample = await child.specialPort(TASK_SAMPLE_PORT);
    const childRegistered = await child.registeredPorts();
    expect(new Set([self, childBootstrap, childException, childSample, ...childRegistered]).size).toBe(7);
    const routes: Array<[number, number]> = [[childBootstrap, bootstrap], [childException, exception], [childSample, sample],
      ...childRegistered.map((name, index) => [name, registered[index]!] as [number, number])];
    for (const [id, [name, port]] of routes.entries()) {
      expect(await child.portType(name)).toBe(MACH_PORT_TYPE_SEND);
      await child.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 100 + id });
      expect(await owner.receive(port, { timeout: 5000 })).toMatchObject({ id: 100 + id, localPort: port });
    }

    // The host port: the owner's host right and the child's are one port (they merge under one name).
    const ownerHost = await owner.specialPort(TASK_HOST_PORT);
    const childHost = await child.specialPort(TASK_HOST_PORT);
    expect(childHost).not.toBe(MACH_PORT_NULL);
    const hostRight = await child.extractRight(childHost, MACH_MSG_TYPE_COPY_SEND);
    await rejectsWith(owner.insertRight(0x7001, hostRight, MACH_MSG_TYPE_MOVE_SEND), KERN_RIGHT_EXISTS);
    const refs = await owner.getRefs(ownerHost, MACH_PORT_RIGHT_SEND);
    await owner.insertRight(ownerHost, hostRight, MACH_MSG_TYPE_MOVE_SEND);
    expect(await owner.getRefs(ownerHost, MACH_PORT_RIGHT_SEND)).toBe(refs + 1);
  });
});

describe('special ports of a dead task', () => {
  it('task_get_special_port hands out MACH_PORT_DEAD for a special port whose port died', async () => {
    const kernel = await bootKernel();
    const owner = await kernel.bootstrapTask.createOn(1);
    const task = await kernel.bootstrapTask.createOn(0);
    const port = await sendRightTo(owner, task, 0x1001);
    await task.setSpecialPort(TASK_BOOTSTRAP_PORT, 0x1001);
    await task.deallocatePort(0x1001);
    await owner.destroyPort(port);
    expect(await task.specialPort(TASK_BOOTSTRAP_PORT)).toBe(MACH_PORT_DEAD);
    // A child gets no bootstrap port at all.
    const child = await task.createOn(1);
    expect(await child.specialPort(TASK_BOOTSTRAP_PORT)).toBe(MACH_PORT_NULL);
  });
});
