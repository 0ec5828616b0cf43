import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  KERN_INVALID_VALUE, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_RCV_IN_SET, MACH_RCV_PORT_DIED,
  MACH_RCV_TIMED_OUT, MACH_SEND_INVALID_DEST,
} from '../src/shared/constants.js';
import { krName } from '../src/shared/errors.js';
import { Port, PortSet } from '../src/actors/ipc/port.js';
import { Deadline, systemClock, type Clock } from '../src/actors/ipc/clock.js';

/** A clock that moves only when told to (xstate's SimulatedClock). */
class SimulatedClock implements Clock {
  now = 0;
  #next = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  setTimeout(callback: () => void, ms: number): number {
    const id = this.#next++;
    this.#timers.set(id, { at: this.now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get pending(): number {
    return this.#timers.size;
  }

  /** Fires, in time order, every timer due within `ms`. */
  advance(ms: number): void {
    const target = this.now + ms;
    for (;;) {
      const due = [...this.#timers].filter(([, t]) => t.at <= target).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = target;
  }
}

/** Watches a promise so a test can ask whether it has settled yet, without waiting on time. */
function watch<T>(promise: Promise<T>): { readonly done: boolean; readonly value: T | undefined } {
  const state: { done: boolean; value: T | undefined } = { done: false, value: undefined };
  void promise.then((value) => {
    state.done = true;
    state.value = value;
  });
  return state;
}

/** Lets every already-resolved promise run its reactions (one event-loop turn, not a sleep). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup() {
  const clock = new SimulatedClock();
  const port = new Port<string>({ clock });
  return { clock, port };
}

async function fill(port: Port<string>, count: number, prefix = 'm'): Promise<void> {
  for (let i = 1; i <= count; i++) expect(await port.send(`${prefix}${i}`)).toBe(MACH_MSG_SUCCESS);
}

const code = (kr: number | undefined) => krName(kr ?? -1);

describe('Port send', () => {
  it('queues every message, in order: the queue limit is the port table\'s (senders reserve places there)', async () => {
    const { port } = setup();
    await fill(port, 8);
    expect(port.msgcount).toBe(8);
    const got: string[] = [];
    for (let i = 0; i < 8; i++) got.push((await port.receive()).msg!);
    expect(got).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8']);
  });

  it('keeps each sender\'s order among interleaved senders', async () => {
    const { port } = setup();
    for (let i = 0; i < 5; i++) {
      expect(port.send(`a${i}`)).toBe(MACH_MSG_SUCCESS);
      expect(port.send(`b${i}`)).toBe(MACH_MSG_SUCCESS);
    }
    const got: string[] = [];
    for (let i = 0; i < 10; i++) got.push((await port.receive()).msg!);
    expect(got.filter((m) => m.startsWith('a'))).toEqual(['a0', 'a1', 'a2', 'a3', 'a4']);
    expect(got.filter((m) => m.startsWith('b'))).toEqual(['b0', 'b1', 'b2', 'b3', 'b4']);
  });

  it('rejects a bad receive timeoutMs with RangeError', async () => {
    const { port } = setup();
    await expect(port.receive({ timeoutMs: Number.NaN })).rejects.toThrow(RangeError);
    await expect(port.receive({ timeoutMs: -1 })).rejects.toThrow(RangeError);
    expect(port.waitingReceivers).toBe(0);
  });
});

describe('Port receive', () => {
  it('returns a queued message at once, stamping increasing sequence numbers', async () => {
    const { port } = setup();
    await fill(port, 3);
    const got = [await port.receive(), await port.receive(), await port.receive()];
    expect(got).toEqual([
      { kr: MACH_MSG_SUCCESS, msg: 'm1', seqno: 0 },
      { kr: MACH_MSG_SUCCESS, msg: 'm2', seqno: 1 },
      { kr: MACH_MSG_SUCCESS, msg: 'm3', seqno: 2 },
    ]);
    expect(port.seqno).toBe(3);
  });

  it('waits without a timer and is woken by the next send', async () => {
    const { clock, port } = setup();
    const waiting = watch(port.receive());
    await settle();
    expect(waiting.done).toBe(false);
    expect(clock.pending).toBe(0);
    expect(port.waitingReceivers).toBe(1);
    expect(await port.send('hello')).toBe(MACH_MSG_SUCCESS);
    await settle();
    expect(waiting.value).toEqual({ kr: MACH_MSG_SUCCESS, msg: 'hello', seqno: 0 });
    expect(port.msgcount).toBe(0);
  });

  it('returns MACH_RCV_TIMED_OUT when nothing comes within timeoutMs, and later sends queue', async () => {
    const { clock, port } = setup();
    const waiting = watch(port.receive({ timeoutMs: 100 }));
    clock.advance(99);
    await settle();
    expect(waiting.done).toBe(false);
    clock.advance(1);
    await settle();
    expect(waiting.value).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(port.waitingReceivers).toBe(0);
    expect(await port.send('kept')).toBe(MACH_MSG_SUCCESS);
    expect(port.msgcount).toBe(1);
  });

  it('polls with timeoutMs 0: MACH_RCV_TIMED_OUT at once on an empty queue', async () => {
    const { clock, port } = setup();
    expect(await port.receive({ timeoutMs: 0 })).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(clock.pending).toBe(0);
  });

  it('serves waiting receivers first come, first served, and clears their timers', async () => {
    const { clock, port } = setup();
    const first = port.receive({ timeoutMs: 500 });
    const second = port.receive({ timeoutMs: 500 });
    await port.send('one');
    await port.send('two');
    expect((await first).msg).toBe('one');
    expect((await second).msg).toBe('two');
    expect(clock.pending).toBe(0);
  });
});

describe('Port death (destroy)', () => {
  it('fails waiting receivers with MACH_RCV_PORT_DIED and hands back the queued messages', async () => {
    const other = setup();
    const receiver = other.port.receive({ timeoutMs: 1000 });
    expect(other.port.destroy()).toEqual([]);
    expect(await receiver).toEqual({ kr: MACH_RCV_PORT_DIED });
    expect(other.clock.pending).toBe(0);

    const { port } = setup();
    await fill(port, 1);
    expect(port.destroy()).toEqual(['m1']);
    expect(code(port.send('late'))).toBe('MACH_SEND_INVALID_DEST');
    expect(port.state).toBe('dead');
  });

  it('fails later sends and receives, and is idempotent', async () => {
    const { port } = setup();
    await fill(port, 2);
    expect(port.destroy()).toEqual(['m1', 'm2']);
    expect(port.destroy()).toEqual([]);
    expect(await port.send('x')).toBe(MACH_SEND_INVALID_DEST);
    expect(await port.receive()).toEqual({ kr: MACH_RCV_PORT_DIED });
  });
});

describe('Port right counts', () => {
  it('counts make-sends (send rights are counted in the port table)', () => {
    const { port } = setup();
    port.makeSend();
    port.makeSend();
    expect(port.mscount).toBe(2);
  });

  it('restarts mscount and seqno when the receive right moves, and sets them on request', async () => {
    const { port } = setup();
    port.makeSend();
    await fill(port, 1);
    await port.receive();
    port.clearReceiver();
    expect([port.mscount, port.seqno]).toEqual([0, 0]);
    expect(port.setSeqno(10)).toBe(KERN_SUCCESS);
    expect(port.setMscount(3)).toBe(KERN_SUCCESS);
    expect(port.setSeqno(-1)).toBe(KERN_INVALID_VALUE);
    expect([port.mscount, port.seqno]).toEqual([3, 10]);
  });
});

describe('PortSet', () => {
  function setSetup() {
    const clock = new SimulatedClock();
    const set = new PortSet<string>({ clock });
    const a = new Port<string>({ clock });
    const b = new Port<string>({ clock });
    set.add(a);
    set.add(b);
    return { clock, set, a, b };
  }

  it('receives from a member with a message and reports which member and its seqno', async () => {
    const { set, b } = setSetup();
    await b.send('from-b');
    const got = await set.receive();
    expect(got.kr).toBe(MACH_MSG_SUCCESS);
    expect(got.msg).toBe('from-b');
    expect(got.port).toBe(b);
    expect(got.seqno).toBe(0);
  });

  it('serves members round-robin so none starves', async () => {
    const { set, a, b } = setSetup();
    for (let i = 0; i < 3; i++) {
      await a.send(`a${i}`);
      await b.send(`b${i}`);
    }
    const got: string[] = [];
    for (let i = 0; i < 6; i++) got.push((await set.receive()).msg!);
    expect(got).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2']);
  });

  it('still serves a quiet member while a busy one is refilled after every receive', async () => {
    const { set, a, b } = setSetup();
    await a.send('a');
    await b.send('b');
    const sources: string[] = [];
    for (let i = 0; i < 4; i++) {
      const got = await set.receive();
      sources.push(got.port === a ? 'a' : 'b');
      if (got.port === a) await a.send('a');
    }
    expect(sources).toContain('b');
  });

  it('makes a member refuse direct receive with MACH_RCV_IN_SET until it leaves', async () => {
    const { set, a } = setSetup();
    await a.send('x');
    expect(await a.receive()).toEqual({ kr: MACH_RCV_IN_SET });
    expect(set.remove(a)).toBe(true);
    expect(set.remove(a)).toBe(false);
    expect((await a.receive()).msg).toBe('x');
  });

  it('waits when no member has a message and is woken by a send to any member', async () => {
    const { clock, set, b } = setSetup();
    const waiting = watch(set.receive());
    await settle();
    expect(waiting.done).toBe(false);
    expect(clock.pending).toBe(0);
    await b.send('wake');
    await settle();
    expect(waiting.value?.msg).toBe('wake');
    expect(waiting.value?.port).toBe(b);
    expect(b.msgcount).toBe(0);
  });

  it('returns MACH_RCV_TIMED_OUT from a set receive with the injected clock', async () => {
    const { clock, set } = setSetup();
    expect(await set.receive({ timeoutMs: 0 })).toEqual({ kr: MACH_RCV_TIMED_OUT });
    const waiting = watch(set.receive({ timeoutMs: 10 }));
    clock.advance(10);
    await settle();
    expect(waiting.value).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(set.waitingReceivers).toBe(0);
  });

  it('serves a waiting set receiver from a port that joins with messages queued', async () => {
    const { clock, set } = setSetup();
    const c = new Port<string>({ clock });
    await c.send('queued');
    const waiting = set.receive();
    set.add(c);
    const got = await waiting;
    expect(got.msg).toBe('queued');
    expect(got.port).toBe(c);
  });

  it('fails direct receivers of a port that joins a set with MACH_RCV_PORT_CHANGED', async () => {
    const { clock, set } = setSetup();
    const c = new Port<string>({ clock });
    const waiting = c.receive({ timeoutMs: 50 });
    set.add(c);
    expect(code((await waiting).kr)).toBe('MACH_RCV_PORT_CHANGED');
    expect(clock.pending).toBe(0);
  });

  it('keeps a port in one set at most: joining another set leaves the first', () => {
    const { clock, set, a } = setSetup();
    const other = new PortSet<string>({ clock });
    other.add(a);
    expect(a.set).toBe(other);
    expect(set.members).not.toContain(a);
    expect(other.members).toEqual([a]);
  });

  it('drops a member that dies, and keeps serving the others', async () => {
    const { set, a, b } = setSetup();
    await a.send('lost');
    await b.send('kept');
    expect(a.destroy()).toEqual(['lost']);
    expect(set.members).toEqual([b]);
    expect((await set.receive()).msg).toBe('kept');
  });

  it('fails set receivers with MACH_RCV_PORT_DIED when destroyed and releases members', async () => {
    const { clock, set, a } = setSetup();
    const waiting = set.receive({ timeoutMs: 100 });
    set.destroy();
    expect(await waiting).toEqual({ kr: MACH_RCV_PORT_DIED });
    expect(clock.pending).toBe(0);
    expect(a.set).toBeNull();
    expect(await set.receive()).toEqual({ kr: MACH_RCV_PORT_DIED });
    await a.send('direct');
    expect((await a.receive()).msg).toBe('direct');
  });
});

describe('Deadline (one time limit for every wait of a call)', () => {
  it('bounds successive waits by one timer on the injected clock, armed at the first wait', async () => {
    const { clock, port } = setup();
    const deadline = new Deadline(clock, 100);
    expect(clock.pending).toBe(0);
    const first = port.receive({ deadline });
    expect(clock.pending).toBe(1);
    clock.advance(60);
    port.send('in time');
    expect(await first).toEqual({ kr: MACH_MSG_SUCCESS, msg: 'in time', seqno: 0 });
    expect(clock.pending).toBe(1);
    const second = watch(port.receive({ deadline }));
    clock.advance(39);
    await settle();
    expect(second.done).toBe(false);
    clock.advance(1);
    await settle();
    expect(second.value).toEqual({ kr: MACH_RCV_TIMED_OUT });
    expect(port.waitingReceivers).toBe(0);
    expect(port.send('kept')).toBe(MACH_MSG_SUCCESS);
    expect(port.msgcount).toBe(1);
  });

  it('has passed already for 0, and race answers at once; cancel clears the timer', async () => {
    const clock = new SimulatedClock();
    const now = new Deadline(clock, 0);
    expect(now.expired).toBe(true);
    expect(await now.race(new Promise<string>(() => {}), 'late')).toBe('late');
    expect(clock.pending).toBe(0);
    const later = new Deadline(clock, 10);
    const raced = later.race(Promise.resolve('first'), 'late');
    expect(clock.pending).toBe(1);
    expect(await raced).toBe('first');
    later.cancel();
    expect(clock.pending).toBe(0);
    expect(later.expired).toBe(false);
  });
});

describe('systemClock', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('chains timers past 2^31 - 1 ms instead of firing at once', () => {
    vi.useFakeTimers();
    const fired: number[] = [];
    systemClock.setTimeout(() => fired.push(1), 2 ** 31 + 5);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(5);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual([1]);
  });

  it('fires a short timer through Node timers and can be cleared', async () => {
    const fired: string[] = [];
    const cleared = systemClock.setTimeout(() => fired.push('cleared'), 0);
    systemClock.clearTimeout(cleared);
    await new Promise<void>((resolve) => systemClock.setTimeout(() => { fired.push('ran'); resolve(); }, 0));
    expect(fired).toEqual(['ran']);
  });
});
