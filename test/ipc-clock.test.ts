/**
 * One clock for every IPC wait (issue 8): the node's IPC is given a clock, and mach_msg's send
 * and receive timeouts, the wait for a queue on its way included, run on it, so a simulated
 * clock drives them and no test sleeps.
 */
import { describe, expect, it } from 'vitest';
import {
  MACH_MSG_SUCCESS, MACH_MSG_TYPE_MAKE_SEND, MACH_PORT_RIGHT_RECEIVE, MACH_RCV_TIMED_OUT,
  MACH_SEND_TIMED_OUT,
} from '../src/shared/constants.js';
import type { NodeId, TaskId } from '../src/shared/types.js';
import type { Clock } from '../src/actors/ipc/clock.js';
import { NodeIpc } from '../src/actors/ipc/ipc-node.js';
import type { IpcHost } from '../src/actors/ipc/ipc-types.js';
import type { OolMemory } from '../src/actors/ipc/mach-msg.js';
import { PortTable } from '../src/actors/ipc/port-table.js';
import { TaskIpc } from '../src/actors/ipc/space.js';

/** A clock that moves only when told to. */
class SimulatedClock implements Clock {
  #now = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();
  setTimeout(callback: () => void, ms: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void { this.#timers.delete(handle as number); }
  get pending(): number { return this.#timers.size; }
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.#now = due[1].at;
      due[1].callback();
    }
    this.#now = target;
  }
}

/** Lets every already-resolved promise run its reactions (one event-loop turn, not a sleep). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function watch<T>(promise: Promise<T>): { readonly done: boolean; readonly value: T | undefined } {
  const state: { done: boolean; value: T | undefined } = { done: false, value: undefined };
  void promise.then((value) => { state.done = true; state.value = value; });
  return state;
}

function setup() {
  const clock = new SimulatedClock();
  const host = { post() {}, releaseObject() {}, holdRegions() {}, portDied() {} } as unknown as IpcHost;
  const ipc = new NodeIpc(0 as NodeId, new PortTable(PortTable.create(), 0 as NodeId), host, clock);
  const task = new TaskIpc(ipc, 1024 as TaskId, {} as OolMemory, null);
  const { name } = task.allocate(MACH_PORT_RIGHT_RECEIVE);
  const port = task.space.lookup(name as never)!.port!;
  return { clock, ipc, task, name, port };
}

describe('IPC waits run on the injected clock', () => {
  it('a receive times out when the clock passes its timeout, not before, and leaves no timer', async () => {
    const { clock, task, name } = setup();
    const received = watch(Promise.resolve(task.receive(name, 30)));
    await settle();
    expect(clock.pending).toBe(1);
    clock.advance(29);
    await settle();
    expect(received.done).toBe(false);
    clock.advance(1);
    await settle();
    expect(received.value).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(clock.pending).toBe(0);
  });

  it('a receive served in time clears its timer', async () => {
    const { clock, task, name } = setup();
    const received = task.receive(name, 1000);
    await settle();
    expect(await task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 7 }, 0)).toBe(MACH_MSG_SUCCESS);
    expect((await received).msg?.id).toBe(7);
    expect(clock.pending).toBe(0);
  });

  it('a send to a full queue times out on the clock, changing nothing; a place freed in time lets it through', async () => {
    const { clock, ipc, task, name, port } = setup();
    const qlimit = ipc.table.qlimit(port);
    for (let i = 0; i < qlimit; i++) {
      expect(await task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: i }, 0)).toBe(MACH_MSG_SUCCESS);
    }
    expect(await task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND }, 0)).toBe(MACH_SEND_TIMED_OUT);
    expect(clock.pending).toBe(0);
    const sending = Promise.resolve(task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 99 }, 50));
    const late = watch(sending);
    await settle();
    expect(clock.pending).toBe(1);
    clock.advance(49);
    await settle();
    expect(late.done).toBe(false);
    clock.advance(1);
    expect(await sending).toBe(MACH_SEND_TIMED_OUT);
    expect(ipc.table.msgcount(port)).toBe(qlimit);
    expect(ipc.local(port)!.queue.msgcount).toBe(qlimit);

    const waiting = task.send({ remotePort: name, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: 100 }, 50);
    await settle();
    expect((await task.receive(name, 0)).msg?.id).toBe(0);
    expect(await waiting).toBe(MACH_MSG_SUCCESS);
    expect(clock.pending).toBe(0);
  });
});
