/**
 * The fast-path channel (src/workers/channel.ts): ring records in one thread, the doorbell's
 * lost-wakeup protocol, serve(); then real workers on the built module streaming and ping-ponging.
 */
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { afterEach, assert, describe, expect, it, vi } from 'vitest';
import { serve } from '../src/workers/channel.js';
import { DOORBELL_CELL_WORDS, Doorbell, createDoorbell } from '../src/workers/doorbell.js';
import { RING_HEADER_BYTES, RingReader, RingWriter, createRing } from '../src/workers/ring.js';
import { decodeKmsg, type WireKmsg } from '../src/shared/kmsg-wire.js';
import { fixture } from './helpers.js';

/** Writes `payload` as one record; returns tryWrite's answer and the data offset it was given. */
function put(writer: RingWriter, payload: Uint8Array): { ok: boolean; offset: number } {
  let offset = -1;
  const ok = writer.tryWrite(payload.length, (bytes, at) => {
    offset = at;
    bytes.set(payload, at);
  });
  return { ok, offset };
}

function take(reader: RingReader): number[][] {
  const records: number[][] = [];
  reader.drain((record) => records.push([...record]));
  return records;
}

const filled = (length: number, value: number): Uint8Array => new Uint8Array(length).fill(value);

describe('createRing', () => {
  it.each([0, 32, 100, 2 ** 31, 1.5])('throws RangeError for capacity %s', (capacity) => {
    expect(() => createRing(capacity)).toThrow(RangeError);
  });

  it('makes a header and a data area of the capacity, and both ends accept it', () => {
    const sab = createRing(1024);
    expect(sab.byteLength).toBe(RING_HEADER_BYTES + 1024);
    expect(new RingWriter(sab).maxPayload).toBe(504);
    expect(new RingReader(sab).empty).toBe(true);
  });
});

describe('RingWriter / RingReader', () => {
  it('drains records in order with their bytes, including an empty one, and then is empty', () => {
    const sab = createRing(256);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    expect(put(writer, filled(3, 1)).ok).toBe(true);
    expect(put(writer, filled(0, 0)).ok).toBe(true);
    expect(put(writer, filled(8, 2)).ok).toBe(true);
    expect(reader.empty).toBe(false);
    expect(take(reader)).toEqual([[1, 1, 1], [], [2, 2, 2, 2, 2, 2, 2, 2]]);
    expect(reader.empty).toBe(true);
    expect(reader.drain(() => assert.fail('no record expected'))).toBe(0);
  });

  it('returns false when the ring is full, writes nothing, and takes records again once drained', () => {
    const sab = createRing(64);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    // 16-byte payloads take 24 bytes each: two fit in 64, a third does not.
    expect(put(writer, filled(16, 1)).ok).toBe(true);
    expect(put(writer, filled(16, 2)).ok).toBe(true);
    let called = false;
    expect(writer.tryWrite(16, () => { called = true; })).toBe(false);
    expect(called).toBe(false);
    expect(take(reader)).toEqual([[...filled(16, 1)], [...filled(16, 2)]]);
    expect(put(writer, filled(16, 3)).ok).toBe(true);
    expect(take(reader)).toEqual([[...filled(16, 3)]]);
  });

  it('refuses a payload over maxPayload even when empty', () => {
    const writer = new RingWriter(createRing(64));
    expect(writer.maxPayload).toBe(24);
    expect(put(writer, filled(25, 1)).ok).toBe(false);
    expect(put(writer, filled(24, 1)).ok).toBe(true);
  });

  it('wraps a record that does not fit before the end to the start of the data area', () => {
    const sab = createRing(64);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    expect(put(writer, filled(20, 1))).toEqual({ ok: true, offset: 8 });   // bytes 0..32
    expect(put(writer, filled(16, 2))).toEqual({ ok: true, offset: 40 });  // bytes 32..56
    // 24 more bytes fit in the ring but not in the 8 before its end, and the start is still in use.
    expect(put(writer, filled(16, 3)).ok).toBe(false);
    expect(take(reader)).toEqual([[...filled(20, 1)], [...filled(16, 2)]]);
    expect(put(writer, filled(16, 3))).toEqual({ ok: true, offset: 8 });   // wrap marker at 56
    expect(put(writer, filled(8, 4))).toEqual({ ok: true, offset: 32 });
    expect(take(reader)).toEqual([[...filled(16, 3)], [...filled(8, 4)]]);
    expect(reader.empty).toBe(true);
  });

  it('publishes nothing when fill throws', () => {
    const sab = createRing(64);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    expect(() => writer.tryWrite(4, () => { throw new Error('fill failed'); })).toThrow('fill failed');
    expect(reader.empty).toBe(true);
    expect(put(writer, filled(4, 9)).ok).toBe(true);
    expect(take(reader)).toEqual([[9, 9, 9, 9]]);
  });

  it('consumes the record whose visit throws and those before it, and no more', () => {
    const sab = createRing(256);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    for (let i = 1; i <= 3; i++) put(writer, filled(1, i));
    expect(() => reader.drain((record) => { if (record[0] === 2) throw new Error('visit failed'); })).toThrow('visit failed');
    expect(take(reader)).toEqual([[3]]);
  });

  it('carries kmsgs: tryWriteKmsg then drainKmsg gives the messages back in order', () => {
    const sab = createRing(1024);
    const writer = new RingWriter(sab);
    const reader = new RingReader(sab);
    const msgs: WireKmsg[] = [0, 1, 2].map((seq) => ({
      dest: 2 ** 53 - seq, destType: 17, bits: 0x12, id: 1 - seq, sender: 2 ** 40 + seq, seq,
      reply: seq === 1 ? null : { kind: 3, port: seq }, rights: [{ kind: 2, port: seq }],
      body: filled(seq * 70, seq),
    }));
    for (const msg of msgs) expect(writer.tryWriteKmsg(msg)).toBe(true);
    const got: WireKmsg[] = [];
    expect(reader.drainKmsg((msg) => got.push(msg))).toBe(3);
    expect(got).toEqual(msgs);
    // drain gives the same records as raw bytes for decodeKmsg.
    writer.tryWriteKmsg(msgs[2]!);
    reader.drain((record) => expect(decodeKmsg(record)).toEqual(msgs[2]));
  });

  type Op = { op: 'write'; length: number } | { op: 'drain' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('write' as const), length: fc.integer({ min: 0, max: 140 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('drain' as const) }) },
  );

  it('delivers records of many sizes in order, intact, and refuses one only when wrap waste explains it (property)', () => {
    fc.assert(fc.property(fc.constantFrom(64, 256, 512), fc.array(opArb, { maxLength: 300 }), (capacity, ops) => {
      const sab = createRing(capacity);
      const writer = new RingWriter(sab);
      const reader = new RingReader(sab);
      const queue: { tag: number; length: number }[] = [];
      let tag = 0;
      let inUse = 0;
      let largest = 0;
      const check = (): void => {
        reader.drain((record) => {
          const expected = queue.shift();
          assert(expected !== undefined, 'drained a record never written');
          expect(record.length).toBe(expected.length);
          expect(record.every((b) => b === expected.tag)).toBe(true);
          inUse -= 8 + ((expected.length + 7) & ~7);
        });
        expect(queue).toEqual([]);
        expect(inUse).toBe(0);
      };
      for (const op of ops) {
        if (op.op === 'drain') {
          check();
          continue;
        }
        tag = (tag + 1) & 0xff;
        const size = 8 + ((op.length + 7) & ~7);
        const { ok } = put(writer, filled(op.length, tag));
        if (op.length > writer.maxPayload) {
          expect(ok).toBe(false);
          continue;
        }
        largest = Math.max(largest, size);
        if (ok) {
          queue.push({ tag, length: op.length });
          inUse += size;
          expect(inUse).toBeLessThanOrEqual(capacity);
        } else {
          // At most one wrap marker is outstanding, and it wastes less than the largest record.
          expect(inUse + size + largest).toBeGreaterThan(capacity);
        }
      }
      check();
    }), { numRuns: 300 });
  });
});

describe('Doorbell', () => {
  const cell = (sab: SharedArrayBuffer, node: number, word: number): number =>
    Atomics.load(new Int32Array(sab), node * DOORBELL_CELL_WORDS + word);

  it('throws RangeError for a node outside the doorbell and for a bad node count', () => {
    expect(() => createDoorbell(0)).toThrow(RangeError);
    expect(() => new Doorbell(createDoorbell(2), 2)).toThrow(RangeError);
  });

  it('ring bumps the target node\'s sequence only', () => {
    const sab = createDoorbell(3);
    new Doorbell(sab, 0).ring(2);
    expect([cell(sab, 0, 0), cell(sab, 1, 0), cell(sab, 2, 0)]).toEqual([0, 0, 1]);
  });

  it('wait returns pending without sleeping when the re-check finds work', async () => {
    const sab = createDoorbell(1);
    let sleepingAtRecheck = -1;
    const outcome = await new Doorbell(sab, 0).wait(() => {
      sleepingAtRecheck = cell(sab, 0, 1);
      return true;
    });
    expect(outcome).toBe('pending');
    expect(sleepingAtRecheck).toBe(1);
    expect(cell(sab, 0, 1)).toBe(0);
  });

  it('wait sleeps with sleeping = 1 until rung; ring leaves it set, only the woken consumer clears it', async () => {
    const sab = createDoorbell(2);
    const waiting = new Doorbell(sab, 1).wait(() => false);
    expect(cell(sab, 1, 1)).toBe(1);
    new Doorbell(sab, 0).ring(1);
    // A producer that cleared it could clear a later sleep's flag (see Doorbell.ring).
    expect(cell(sab, 1, 1)).toBe(1);
    expect(await waiting).toBe('ok');
    expect(cell(sab, 1, 1)).toBe(0);
  });

  it('wait does not lose a ring that lands between the re-check and waitAsync (not-equal)', async () => {
    const sab = createDoorbell(2);
    const producer = new Doorbell(sab, 0);
    // The ring comes after the consumer announced sleep but before it registers its wait.
    const outcome = await new Doorbell(sab, 1).wait(() => {
      producer.ring(1);
      return false;
    });
    expect(outcome).toBe('not-equal');
    expect(cell(sab, 1, 1)).toBe(0);
  });

  it('a burst of rings to a sleeping node costs one notify per sleep, and the next sleep is notified again', async () => {
    const sab = createDoorbell(2);
    const notify = vi.spyOn(Atomics, 'notify');
    try {
      const consumer = new Doorbell(sab, 1);
      const producer = new Doorbell(sab, 0);
      const first = consumer.wait(() => false);
      for (let i = 0; i < 5; i++) producer.ring(1);
      expect(await first).toBe('ok');
      const second = consumer.wait(() => false);
      // Each sleep has its own id: the first sleep's notify does not cover this one.
      expect(cell(sab, 1, 1)).toBe(2);
      producer.ring(1);
      producer.ring(1);
      expect(await second).toBe('ok');
      expect(notify).toHaveBeenCalledTimes(2);
    } finally {
      notify.mockRestore();
    }
  });

  it('wait with a spin budget returns spun, never sleeping, when the sequence moves while it polls', async () => {
    const sab = createDoorbell(1);
    const bell = new Doorbell(sab, 0);
    queueMicrotask(() => bell.ring(0));
    expect(await bell.wait(() => assert.fail('no re-check expected'), 10_000)).toBe('spun');
    expect(cell(sab, 0, 1)).toBe(0);
  });
});

describe('serve', () => {
  it('delivers records from every incoming ring with its source node, and stops when aborted while asleep', async () => {
    const doorbell = createDoorbell(3);
    const rings = [createRing(256), null, createRing(256)];
    const bell = new Doorbell(doorbell, 1);
    const seen: [number, number][] = [];
    const controller = new AbortController();
    const writers = [new RingWriter(rings[0]!), new RingWriter(rings[2]!)];
    put(writers[0]!, filled(1, 10));
    put(writers[1]!, filled(1, 20));
    put(writers[0]!, filled(1, 11));
    const served = serve(rings.map((sab) => (sab === null ? null : new RingReader(sab))), bell,
      (record, from) => {
        seen.push([from, record[0]!]);
        if (seen.length === 4) controller.abort();
      }, { signal: controller.signal });
    // The first drain ran synchronously; now the loop sleeps.
    expect(seen).toEqual([[0, 10], [0, 11], [2, 20]]);
    await Promise.resolve();
    put(writers[1]!, filled(1, 21));
    new Doorbell(doorbell, 2).ring(1);
    await served;
    expect(seen).toEqual([[0, 10], [0, 11], [2, 20], [2, 21]]);
    expect(Atomics.load(new Int32Array(doorbell), DOORBELL_CELL_WORDS + 1)).toBe(0);
  });

  it('resolves at once, from asleep, when aborted with nothing to read', async () => {
    const controller = new AbortController();
    const doorbell = createDoorbell(1);
    const served = serve([new RingReader(createRing(64))], new Doorbell(doorbell, 0),
      () => assert.fail('no record expected'), { signal: controller.signal });
    expect(Atomics.load(new Int32Array(doorbell), 1)).toBe(1);
    controller.abort();
    await expect(served).resolves.toBeUndefined();
  });

  it('spins after this node sent: an answer rung while it polls is taken without waitAsync', async () => {
    const doorbell = createDoorbell(2);
    const out = createRing(64);
    const back = createRing(64);
    const bell = new Doorbell(doorbell, 0);
    const controller = new AbortController();
    const waitAsync = vi.spyOn(Atomics, 'waitAsync');
    try {
      put(new RingWriter(out), filled(1, 1));
      bell.ring(1);
      const got: number[] = [];
      // A budget far longer than the test: only the answer ends the spin.
      const served = serve([null, new RingReader(back)], bell, (record) => {
        got.push(record[0]!);
        controller.abort();
      }, { signal: controller.signal, spin: 10_000_000 });
      // Runs at the spin's first microtask turn, as a reply computed on this thread would.
      queueMicrotask(() => {
        put(new RingWriter(back), filled(1, 42));
        new Doorbell(doorbell, 1).ring(0);
      });
      await served;
      expect(got).toEqual([42]);
      expect(waitAsync).not.toHaveBeenCalled();
    } finally {
      waitAsync.mockRestore();
    }
  });

  it('sleeps at once, spin or not, when this node has sent nothing since its last wait', async () => {
    const doorbell = createDoorbell(1);
    const controller = new AbortController();
    const waitAsync = vi.spyOn(Atomics, 'waitAsync');
    try {
      const served = serve([new RingReader(createRing(64))], new Doorbell(doorbell, 0),
        () => assert.fail('no record expected'), { signal: controller.signal, spin: 10_000_000 });
      expect(waitAsync).toHaveBeenCalledTimes(1);
      expect(Atomics.load(new Int32Array(doorbell), 1)).toBe(1);
      controller.abort();
      await served;
    } finally {
      waitAsync.mockRestore();
    }
  });

  it('rejects with the exception onRecord throws, that record consumed', async () => {
    const ring = createRing(64);
    const reader = new RingReader(ring);
    put(new RingWriter(ring), filled(1, 1));
    await expect(serve([reader], new Doorbell(createDoorbell(1), 0), () => { throw new Error('bad record'); }))
      .rejects.toThrow('bad record');
    expect(reader.empty).toBe(true);
  });

  it('throws RangeError for a negative or infinite spin or a zero batch', async () => {
    const reader = new RingReader(createRing(64));
    const bell = new Doorbell(createDoorbell(1), 0);
    await expect(serve([reader], bell, () => {}, { spin: -1 })).rejects.toThrow(RangeError);
    await expect(serve([reader], bell, () => {}, { spin: Infinity })).rejects.toThrow(RangeError);
    await expect(serve([reader], bell, () => {}, { batch: 0 })).rejects.toThrow(RangeError);
  });
});

// --- Real workers running the built module (dist/), as nodes will. ---

interface Message { readonly op: string; readonly [key: string]: unknown }

const workers: Worker[] = [];

afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.terminate()));
});

/** A node on test/fixtures/channel-node.mjs, with a queue of the messages it posts. */
function node(data: Record<string, unknown>) {
  const worker = new Worker(fixture('channel-node.mjs'), { workerData: data });
  workers.push(worker);
  const inbox: Message[] = [];
  const waiters: ((message: Message) => void)[] = [];
  let failure: Error | undefined;
  const failAll = (error: Error): void => {
    failure = error;
    for (const waiter of waiters.splice(0)) waiter({ op: 'failed', error });
  };
  worker.on('message', (message: Message) => {
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else inbox.push(message);
  });
  worker.on('error', failAll);
  const exited = new Promise<number>((resolve) => worker.on('exit', (code) => {
    failAll(new Error(`worker exited with code ${code}`));
    resolve(code);
  }));
  const next = async (op: string): Promise<Message> => {
    const message = inbox.shift() ?? (failure ? { op: 'failed', error: failure } : await new Promise<Message>((resolve) => waiters.push(resolve)));
    if (message.op !== op) throw new Error(`expected ${op}, got ${message.op}: ${String(message['error'] ?? '')}`);
    return message;
  };
  return { worker, next, exited };
}

/** Rings for every ordered pair of `count` nodes, as node `i` sees them (incoming by source, outgoing by target). */
function mesh(count: number, capacity: number) {
  const rings = Array.from({ length: count }, (_, src) =>
    Array.from({ length: count }, (_, dst) => (src === dst ? null : createRing(capacity))));
  return {
    doorbell: createDoorbell(count),
    incoming: (dst: number) => rings.map((row) => row[dst]!),
    outgoing: (src: number) => rings[src]!,
  };
}

describe('channel between worker nodes (dist/workers/channel.js)', () => {
  it('streams 100,000 kmsgs one way, in order and intact, through a ring that fills up', async () => {
    const count = 100_000;
    const { doorbell, incoming, outgoing } = mesh(2, 64 * 1024);
    const producer = node({ role: 'producer', node: 0, doorbell, incoming: incoming(0), outgoing: outgoing(0) });
    const consumer = node({ role: 'consumer', node: 1, doorbell, incoming: incoming(1), outgoing: outgoing(1), expect: count });
    expect(await consumer.next('ready')).toMatchObject({ sleeping: 1 });
    await producer.next('ready');
    producer.worker.postMessage({ op: 'stream', to: 1, count });
    const streamed = await producer.next('streamed');
    expect(await consumer.next('received')).toEqual({ op: 'received', count, errors: 0 });
    expect(streamed).toMatchObject({ count });
    // ~7.5 MB through a 64 KiB ring: the producer must have found it full and carried on.
    expect(streamed['full']).toBeGreaterThan(0);
    consumer.worker.postMessage({ op: 'stop' });
    expect(await consumer.next('stopped')).toEqual({ op: 'stopped', errors: 0 });
    // No terminate(): the thread ends by itself once serve has stopped and the port is let go.
    expect(await consumer.exited).toBe(0);
  });

  it('wakes a consumer that sleeps between bursts every time: 300,000 kmsgs in 1-64-message bursts', async () => {
    const count = 300_000;
    const { doorbell, incoming, outgoing } = mesh(2, 64 * 1024);
    const producer = node({ role: 'producer', node: 0, doorbell, incoming: incoming(0), outgoing: outgoing(0) });
    const consumer = node({ role: 'consumer', node: 1, doorbell, incoming: incoming(1), outgoing: outgoing(1), expect: count });
    await Promise.all([producer.next('ready'), consumer.next('ready')]);
    producer.worker.postMessage({ op: 'stream', to: 1, count, bursts: true });
    await producer.next('streamed');
    // A lost wake-up leaves the last burst unread and this waiting until the test times out.
    expect(await consumer.next('received')).toEqual({ op: 'received', count, errors: 0 });
  });

  it.each([0, 20])('does 1,000 kmsg round trips between two serving nodes (spin %s µs)', async (spin) => {
    const rounds = 1000;
    const { doorbell, incoming, outgoing } = mesh(2, 4096);
    const pinger = node({ role: 'pinger', node: 0, doorbell, incoming: incoming(0), outgoing: outgoing(0), spin });
    const ponger = node({ role: 'ponger', node: 1, doorbell, incoming: incoming(1), outgoing: outgoing(1), spin });
    await Promise.all([pinger.next('ready'), ponger.next('ready')]);
    pinger.worker.postMessage({ op: 'ping', to: 1, rounds });
    expect(await pinger.next('ponged')).toMatchObject({ rounds, errors: 0 });
    for (const end of [pinger, ponger]) {
      end.worker.postMessage({ op: 'stop' });
      expect(await end.next('stopped')).toEqual({ op: 'stopped', errors: 0 });
      expect(await end.exited).toBe(0);
    }
  });

  it('terminate() ends a node parked in its serve loop', async () => {
    const { doorbell, incoming, outgoing } = mesh(2, 64);
    const parked = node({ role: 'consumer', node: 1, doorbell, incoming: incoming(1), outgoing: outgoing(1) });
    expect(await parked.next('ready')).toMatchObject({ sleeping: 1 });
    await parked.worker.terminate();
    expect(await parked.exited).toBe(1);
  });
});
