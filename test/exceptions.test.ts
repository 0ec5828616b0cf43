/**
 * Exceptions as messages (issue 9 item 4): per-type exception ports on both faces, the
 * exception_raise message a thread's uncaught error sends (id, rights, body layout), the
 * handler order thread -> task, a KERN_SUCCESS reply resuming the thread with the state the
 * handler set, a failing reply moving on, and no handler terminating the task with the host
 * told. No sleeps: every wait is on a message, a join or the task's end.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeExceptionRaise, EXC_ARITHMETIC, EXC_BAD_ACCESS, EXC_MASK_ALL, EXC_MASK_ARITHMETIC, EXC_MASK_BAD_ACCESS,
  EXC_MASK_SOFTWARE, EXC_RAISE_ID, EXC_RAISE_STATE_IDENTITY_ID, EXC_RPC_ALERT, EXC_SOFT_JS_THROW,
  EXC_SOFT_JS_UNCLONEABLE, EXC_SOFTWARE, EXCEPTION_DEFAULT, EXCEPTION_STATE, EXCEPTION_STATE_IDENTITY,
  exceptionReply, KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_INVALID_NAME, KERN_SUCCESS, KERN_TERMINATED, KernError,
  MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_SEND,
  MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_PORT_NULL, MACH_SEND_INVALID_DEST, MACH_SEND_MSG, NORMA_THREAD_STATE_JS, TASK_EXCEPTION_PORT,
  MACH_MSG_TYPE_COPY_SEND, MACH_PORT_LIMITS_INFO, TH_STATE_WAITING,
} from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

const victimCode = fixture('exc-victim.mjs');
const handlerCode = fixture('exc-handler.mjs');
/** The name the handler's send right takes in the victim's space. */
const IN_VICTIM = 0x5001;

async function rejection(promise: Promise<unknown>): Promise<KernError> {
  const error = await promise.then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(KernError);
  return error as KernError;
}

/** A victim task on node 0 with a page, and a handler task on node 1 owning `ports` receive rights, each sendable from the victim. */
async function setup(ports = 1) {
  const kernel = await bootKernel();
  const victim = await kernel.bootstrapTask.createOn(0);
  const handler = await kernel.bootstrapTask.createOn(1);
  const page = await victim.allocate(kernel.pageSize);
  const receive: number[] = [];
  const send: number[] = [];
  for (let i = 0; i < ports; i++) {
    const name = await handler.allocatePort();
    await victim.insertRight(IN_VICTIM + i * 0x1000, await handler.extractRight(name, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    receive.push(name);
    send.push(IN_VICTIM + i * 0x1000);
  }
  return { kernel, victim, handler, page, receive, send };
}

describe('exceptions: constants', () => {
  it("has Mach's values", () => {
    expect([EXC_BAD_ACCESS, EXC_ARITHMETIC, EXC_SOFTWARE, EXC_RPC_ALERT]).toEqual([1, 3, 5, 9]);
    expect([EXC_MASK_BAD_ACCESS, EXC_MASK_ARITHMETIC, EXC_MASK_SOFTWARE, EXC_MASK_ALL]).toEqual([0x2, 0x8, 0x20, 0x3fe]);
    expect([EXCEPTION_DEFAULT, EXCEPTION_STATE, EXCEPTION_STATE_IDENTITY]).toEqual([1, 2, 3]);
    expect([EXC_RAISE_ID, EXC_RAISE_STATE_IDENTITY_ID]).toEqual([2401, 2403]);
  });
});

describe('exceptions: setting and getting the ports', () => {
  it('task_set/get/swap_exception_ports on kernel.mach, names in the target task; bad input changes nothing', async () => {
    const { kernel, victim, send } = await setup();
    const mach = kernel.mach;
    expect(await mach.task_set_exception_ports(victim, EXC_MASK_SOFTWARE | EXC_MASK_ARITHMETIC, send[0]!, EXCEPTION_DEFAULT, 0))
      .toBe(KERN_SUCCESS);
    const got = await mach.task_get_exception_ports(victim, EXC_MASK_SOFTWARE | EXC_MASK_ARITHMETIC | EXC_MASK_BAD_ACCESS);
    expect(got).toMatchObject({ kr: KERN_SUCCESS, old_exception_count: 2, old_exception_masks: [EXC_MASK_BAD_ACCESS, EXC_MASK_ARITHMETIC | EXC_MASK_SOFTWARE],
      old_behaviors: [0, EXCEPTION_DEFAULT], old_flavors: [0, 0] });
    expect(got.old_exception_ports[0]).toBe(MACH_PORT_NULL);
    // A send right named in the victim's space: the same port as IN_VICTIM (one name per port).
    expect(got.old_exception_ports[1]).toBe(send[0]);

    const before = await mach.task_get_exception_ports(victim, EXC_MASK_ALL);
    expect(await mach.task_set_exception_ports(victim, 1 << 12, send[0]!, EXCEPTION_DEFAULT, 0)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_set_exception_ports(victim, EXC_MASK_SOFTWARE, send[0]!, 7, 0)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_set_exception_ports(victim, EXC_MASK_SOFTWARE, send[0]!, EXCEPTION_STATE, 99)).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_set_exception_ports(victim, EXC_MASK_SOFTWARE, 0x7777, EXCEPTION_DEFAULT, 0)).toBe(KERN_INVALID_NAME);
    expect((await mach.task_swap_exception_ports(victim, EXC_MASK_SOFTWARE, 0x7777, EXCEPTION_DEFAULT, 0)).kr).toBe(KERN_INVALID_NAME);
    expect((await mach.task_get_exception_ports(victim, -1)).kr).toBe(KERN_INVALID_ARGUMENT);
    expect(await mach.task_get_exception_ports(victim, EXC_MASK_ALL)).toEqual(before);

    const swapped = await mach.task_swap_exception_ports(victim, EXC_MASK_SOFTWARE, MACH_PORT_NULL, EXCEPTION_DEFAULT, 0);
    expect(swapped).toMatchObject({ kr: KERN_SUCCESS, old_exception_masks: [EXC_MASK_SOFTWARE], old_behaviors: [EXCEPTION_DEFAULT], old_exception_count: 1 });
    expect((await mach.task_get_exception_ports(victim, EXC_MASK_SOFTWARE)).old_exception_ports).toEqual([MACH_PORT_NULL]);
  });

  it('thread_* on kernel.mach and the idiomatic methods; new threads start with none, children inherit the task\'s', async () => {
    const { kernel, victim, send } = await setup();
    const { child_act } = await kernel.mach.thread_create(victim);
    const none = await kernel.mach.thread_get_exception_ports(child_act!, EXC_MASK_ALL);
    expect(none).toMatchObject({ kr: KERN_SUCCESS, old_exception_masks: [EXC_MASK_ALL], old_exception_ports: [MACH_PORT_NULL], old_exception_count: 1 });
    expect(await kernel.mach.thread_set_exception_ports(child_act!, EXC_MASK_SOFTWARE, send[0]!, EXCEPTION_STATE, NORMA_THREAD_STATE_JS))
      .toBe(KERN_SUCCESS);
    expect(await child_act!.exceptionPorts(EXC_MASK_SOFTWARE)).toMatchObject(
      { old_exception_masks: [EXC_MASK_SOFTWARE], old_exception_ports: [send[0]], old_behaviors: [EXCEPTION_STATE], old_flavors: [NORMA_THREAD_STATE_JS] });
    expect((await child_act!.swapExceptionPorts(EXC_MASK_SOFTWARE, MACH_PORT_NULL)).old_behaviors).toEqual([EXCEPTION_STATE]);
    expect((await rejection(child_act!.setExceptionPorts(EXC_MASK_SOFTWARE, 0x7777))).kr).toBe(KERN_INVALID_NAME);
    expect((await kernel.mach.thread_swap_exception_ports(child_act!, 0, MACH_PORT_NULL, 9, 0)).kr).toBe(KERN_INVALID_ARGUMENT);

    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!, EXCEPTION_STATE_IDENTITY);
    expect((await rejection(victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!, 0))).kr).toBe(KERN_INVALID_ARGUMENT);
    const child = await victim.createOn(1);
    const inherited = await child.exceptionPorts(EXC_MASK_SOFTWARE);
    expect(inherited).toMatchObject({ old_exception_masks: [EXC_MASK_SOFTWARE], old_behaviors: [EXCEPTION_STATE_IDENTITY] });
    expect(inherited.old_exception_ports[0]).not.toBe(MACH_PORT_NULL);
    const spawned = await victim.spawn(victimCode, 'add', 1, 2);
    expect(await spawned.join()).toBe(3);
    expect((await rejection(spawned.exceptionPorts())).kr).toBe(KERN_TERMINATED);
  });

  it('inside a thread: task_ and thread_ calls on its own ports, names in its space', async () => {
    const { victim } = await setup();
    const name = await victim.allocatePort();
    await victim.insertRight(name, name, MACH_MSG_TYPE_MAKE_SEND);
    const result = await (await victim.spawn(handlerCode, 'ownPorts', name, EXC_MASK_SOFTWARE, EXCEPTION_DEFAULT, 0)).join() as
      Record<string, { kr: number; old_exception_ports: number[]; old_behaviors: number[] } | number>;
    expect(result.setKr).toBe(KERN_SUCCESS);
    expect(result.task).toMatchObject({ kr: KERN_SUCCESS, old_exception_ports: [name], old_behaviors: [EXCEPTION_DEFAULT] });
    expect(result.threadSetKr).toBe(KERN_SUCCESS);
    expect(result.swapped).toMatchObject({ kr: KERN_SUCCESS, old_exception_ports: [name] });
    expect(result.thread).toMatchObject({ kr: KERN_SUCCESS, old_exception_ports: [MACH_PORT_NULL] });
    expect(result.swappedTask).toMatchObject({ kr: KERN_SUCCESS, old_exception_ports: [name] });
  });
});

describe('exceptions: raising', () => {
  it('sends exception_raise (2401) to a handler on another node, which resumes the thread with a new state', async () => {
    const { victim, handler, page, receive, send } = await setup();
    await victim.write(page + 8, new Uint8Array([7, 7, 7, 7]));
    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!);
    const newState = { module: victimCode.href, entry: 'retry', args: [page, true] };
    const serving = (await handler.spawn(handlerCode, 'serve', receive[0], [{ retCode: KERN_SUCCESS, state: newState }], page + 8)).join();
    const thread = await victim.spawn(victimCode, 'retry', page, false);
    expect(await thread.join()).toBe('recovered');
    expect(new Int32Array((await victim.read(page, 4)).buffer)[0]).toBe(42);
    const { seen: [record] } = await serving as { seen: Record<string, unknown>[] };
    expect(record).toMatchObject({
      id: EXC_RAISE_ID, portTypes: [MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND], remoteType: MACH_MSG_TYPE_PORT_SEND_ONCE,
      threadState: { entry: 'retry', args: [page, false] }, setKr: KERN_SUCCESS, probe: [7, 7, 7, 7], replyKr: KERN_SUCCESS,
    });
    const body = Uint8Array.from(record!.body as number[]);
    const words = new DataView(body.buffer);
    expect([...body.subarray(0, 8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect([words.getInt32(8, true), words.getInt32(12, true), words.getInt32(16, true), words.getInt32(20, true)])
      .toEqual([EXC_SOFTWARE, 2, EXC_SOFT_JS_THROW, 0]);
    expect(decodeExceptionRaise(body)!.error).toMatchObject({ name: 'Error', message: 'not yet' });
    expect(decodeExceptionRaise(body)!.error!.stack).toContain('retry');
  });

  it('asks the thread handler first, then the task handler after a failing reply; a success with no new state ends the thread', async () => {
    const { victim, handler, receive, send } = await setup(2);
    await victim.setExceptionPorts(EXC_MASK_ALL, send[1]!);
    const { child_act } = await victim.kernel.mach.thread_create(victim);
    await child_act!.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!);
    const serving = (await handler.spawn(handlerCode, 'serveInOrder', [
      { port: receive[0], steps: [{ retCode: KERN_FAILURE }] },
      { port: receive[1], steps: [{ retCode: KERN_SUCCESS }] },
    ])).join();
    await child_act!.setState(victimCode, 'fail', 'first');
    await child_act!.resume();
    expect(await child_act!.join()).toBeUndefined();
    const [first, second] = await serving as { seen: { id: number; raise: { error: { message: string } } }[] }[];
    expect(first!.seen[0]!.raise.error.message).toBe('first');
    expect(second!.seen[0]!.raise.error.message).toBe('first');
    expect(await victim.info()).toMatchObject({ node: 0 }); // the task lives on
  });

  it('a handler on the host face: EXCEPTION_STATE_IDENTITY (2403) carries the state; the reply\'s new state runs', async () => {
    const { victim, handler, page, receive, send } = await setup();
    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!, EXCEPTION_STATE_IDENTITY, NORMA_THREAD_STATE_JS);
    const thread = await victim.spawn(victimCode, 'retry', page, false);
    const request = await handler.receive(receive[0]!);
    expect(request.id).toBe(EXC_RAISE_STATE_IDENTITY_ID);
    expect(request.ports.map((port) => port.type)).toEqual([MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND]);
    const raise = decodeExceptionRaise(request.body)!;
    expect(raise).toMatchObject({ exception: EXC_SOFTWARE, code: [EXC_SOFT_JS_THROW, 0], flavor: NORMA_THREAD_STATE_JS,
      state: { entry: 'retry', args: [page, false] } });
    const reply = exceptionReply(request.id, KERN_SUCCESS, { flavor: NORMA_THREAD_STATE_JS,
      state: { module: victimCode.href, entry: 'retry', args: [page, true] } });
    expect(reply.id).toBe(EXC_RAISE_STATE_IDENTITY_ID + 100);
    await handler.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, ...reply });
    expect(await thread.join()).toBe('recovered');
  });

  it('with no handler the task is terminated: the join and task.exited() reject with the error', async () => {
    const { victim } = await setup();
    const exited = rejection(victim.exited()); // handled from now on: it may settle before the join
    const thread = await victim.spawn(victimCode, 'fail', 'nobody listens');
    const joined = await rejection(thread.join());
    expect(joined.kr).toBe(KERN_FAILURE);
    expect(joined.cause).toMatchObject({ name: 'TypeError', message: 'nobody listens' });
    const ended = await exited;
    expect(ended.kr).toBe(KERN_FAILURE);
    expect(ended.cause).toMatchObject({ name: 'TypeError', message: 'nobody listens', exception: EXC_SOFTWARE,
      code: [EXC_SOFT_JS_THROW, 0], thread: thread.id });
    expect((await rejection(victim.info())).kr).toBe(KERN_INVALID_ARGUMENT);
    await expect(victim.exited()).rejects.toThrow('nobody listens'); // told later callers too
  });

  it('after the last failing handler the task is terminated; an uncloneable result is an exception naming it', async () => {
    const { kernel, victim, handler, receive, send } = await setup();
    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!);
    const serving = (await handler.spawn(handlerCode, 'serve', receive[0], [{ retCode: KERN_FAILURE }])).join();
    const thread = await victim.spawn(victimCode, 'returnsSymbol');
    const error = await rejection(thread.join());
    expect(error.message).toContain('cannot be cloned: Symbol(not cloneable)');
    const { seen: [record] } = await serving as { seen: { raise: { code: number[] } }[] };
    expect(record!.raise.code).toEqual([EXC_SOFT_JS_UNCLONEABLE, 0]);
    await expect(victim.exited()).rejects.toThrow('Symbol(not cloneable)');
    // The handler's node and task are fine.
    expect(await (await handler.spawn(victimCode, 'add', 2, 2)).join()).toBe(4);
    const plain = await kernel.bootstrapTask.createOn(0);
    const plainExit = plain.exited();
    await plain.terminate();
    await expect(plainExit).resolves.toBeUndefined();
  });

  it("GNU's TASK_EXCEPTION_PORT is the task's last handler when no per-type one is set", async () => {
    const { victim, handler, receive, send } = await setup();
    await victim.setSpecialPort(TASK_EXCEPTION_PORT, send[0]!);
    const thread = await victim.spawn(victimCode, 'failNow', 'to gnu');
    const request = await handler.receive(receive[0]!);
    expect(request.id).toBe(EXC_RAISE_ID);
    expect(decodeExceptionRaise(request.body)!.error!.message).toBe('to gnu');
    await handler.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, ...exceptionReply(request.id, KERN_SUCCESS) });
    expect(await thread.join()).toBeUndefined();
  });

  it('a handler that destroys its reply right counts as failing; a thread waiting for its handler shows TH_STATE_WAITING and can be terminated', async () => {
    const { victim, handler, receive, send } = await setup();
    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!);
    const first = await victim.spawn(victimCode, 'failNow', 'waiting');
    const request = await handler.receive(receive[0]!);
    expect((await first.info()).runState).toBe(TH_STATE_WAITING);
    await first.terminate();
    expect((await rejection(first.join())).kr).toBe(KERN_TERMINATED);
    // The reply port died with the wait: the late reply finds no receiver.
    expect(await handler.kernel.mach.mach_msg(handler, { remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE,
      ...exceptionReply(request.id, KERN_SUCCESS) }, MACH_SEND_MSG)).toEqual({ kr: MACH_SEND_INVALID_DEST });
    expect(await victim.info()).toMatchObject({ node: 0 });

    const second = await victim.spawn(victimCode, 'failNow', 'dropped');
    const dropped = await handler.receive(receive[0]!);
    await handler.deallocatePort(dropped.remotePort);
    expect((await rejection(second.join())).cause).toMatchObject({ message: 'dropped' });
    await expect(victim.exited()).rejects.toThrow('dropped');
  });

  it("the kernel's exception_raise waits for a place in a full handler queue instead of being lost", async () => {
    const { victim, handler, receive, send } = await setup();
    await handler.setPortAttributes(receive[0]!, MACH_PORT_LIMITS_INFO, { queue_limit: 1 });
    await handler.insertRight(receive[0]!, receive[0]!, MACH_MSG_TYPE_MAKE_SEND);
    await handler.send({ remotePort: receive[0]!, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 });
    await victim.setExceptionPorts(EXC_MASK_SOFTWARE, send[0]!);
    const thread = await victim.spawn(victimCode, 'failNow', 'queued behind');
    expect((await handler.receive(receive[0]!)).id).toBe(1);
    const request = await handler.receive(receive[0]!);
    expect(request.id).toBe(EXC_RAISE_ID);
    await handler.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, ...exceptionReply(request.id, KERN_SUCCESS) });
    expect(await thread.join()).toBeUndefined();
  });
});
