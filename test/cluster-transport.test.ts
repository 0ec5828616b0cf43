/**
 * The NATS ClusterLink (src/cluster/transport.ts) against a real nats-server on a loopback port:
 * two transports in this process (a host and a member), a rogue client of the same server, the
 * server restarted mid-stream. The go-back-N bookkeeping is also checked alone, without a server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { serialize } from 'node:v8';
import { connect } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { NatsTransport, type ClusterConnectOptions } from '../src/cluster/transport.js';
import { KernReturn } from '../src/shared/constants.js';
import { encodeFrame, FLAG_FIRST, FLAG_LAST, FrameKind, subjects, type Frame } from '../src/cluster/transport-frame.js';
import { Peer } from '../src/cluster/transport-peer.js';
import { natsServerPath, startNatsServer, type NatsServer } from './cluster/nats-server.js';

// Straight from the source (not 'norma-rt'): this suite needs no build and no kernel.
const { KERN_FAILURE, KERN_INVALID_ARGUMENT, KERN_NODE_DOWN } = KernReturn;

/** A rogue NATS client in its own process: 64 MiB of junk on one subject, as fast as it goes. */
const FLOOD = `
import { connect } from 'nats';
const [url, user, pass, subject] = process.argv.slice(1);
const nc = await connect({ servers: url, user, pass });
const junk = new Uint8Array(256 * 1024).fill(7);
process.stdout.write('flooding\\n');
for (let i = 0; i < 256; i++) { nc.publish(subject, junk); if (i % 16 === 0) await nc.flush(); }
await nc.close();
`;

const until = (condition: () => boolean, timeout = 10_000) =>
  vi.waitFor(() => { if (!condition()) throw new Error('not yet'); }, { timeout, interval: 10 });

describe('go-back-N bookkeeping (no server)', () => {
  const data = (seq: number, flags = FLAG_FIRST | FLAG_LAST, payload = new Uint8Array([seq])): Frame =>
    ({ kind: FrameKind.data, flags, from: 1, stamp: seq, seq, ack: 0, payload });

  it('delivers in order, drops duplicates, reports a gap once and resumes after the resend', () => {
    const peer = new Peer(1, 0);
    expect(peer.receive(data(1)).kind).toBe('message');
    expect(peer.receive(data(1)).kind).toBe('duplicate');
    expect(peer.receive(data(3))).toEqual({ kind: 'gap', expected: 2, first: true });
    expect(peer.receive(data(4))).toEqual({ kind: 'gap', expected: 2, first: false });
    expect(peer.receive(data(2)).kind).toBe('message');
    expect(peer.receive(data(3)).kind).toBe('message');
    expect(peer.ackToSend).toBe(3);
  });

  it('resends from the requested frame, keeps frames until acknowledged, reassembles chunks', () => {
    const sender = new Peer(1, 0);
    const wire: { seq: number; flags: number; bytes: Uint8Array }[] = [];
    const send = (_kind: number, flags: number, seq: number, bytes: Uint8Array) => { wire.push({ seq, flags, bytes }); return true; };
    const big = randomBytes(1024 * 1024 + 7);
    sender.enqueue(new Uint8Array([1]));
    sender.enqueue(big);
    expect(sender.pump(send, 0)).toBe(4); // 1 small + 3 chunks of at most 512 KiB
    expect(sender.acknowledge(2, 0)).toBe(true);
    expect(sender.resend(1, send, 10)).toBe(2); // seq 3 and 4 again, never the acknowledged ones
    expect(wire.slice(4).map((w) => w.seq)).toEqual([3, 4]);
    const receiver = new Peer(0, 0);
    const receipts = wire.slice(0, 4).map((w) => receiver.receive({ ...data(w.seq, w.flags), payload: w.bytes }));
    expect(receipts.map((r) => r.kind)).toEqual(['message', 'partial', 'partial', 'message']);
    const last = receipts[3]!;
    expect(last.kind === 'message' && Buffer.compare(Buffer.from(last.bytes), big)).toBe(0);
  });
});

const serverPath = natsServerPath();
if (serverPath === undefined) {
  console.warn('cluster-transport: nats-server is not installed; the NATS transport suite did not run ' +
    '(Debian: apt-get install nats-server)');
}

describe.skipIf(serverPath === undefined)('NatsTransport over a real nats-server', () => {
  let server: NatsServer;
  let open: NatsTransport[] = [];
  let clusters = 0;

  beforeAll(async () => { server = await startNatsServer(); });
  afterAll(async () => { await server?.stop(); });
  afterEach(async () => {
    await Promise.all(open.map((link) => link.close()));
    open = [];
  });

  const optionsFor = (extra: Partial<ClusterConnectOptions> = {}): ClusterConnectOptions =>
    ({ servers: server.url, user: server.user, pass: server.pass, name: `t${++clusters}`, ...extra });

  async function pair(extra: Partial<ClusterConnectOptions> = {}) {
    const options = optionsFor(extra);
    const hosting = NatsTransport.host(options, { members: 1, processIds: ['member-1'], assignment: (index) => ({ index, role: 'member' }) });
    const joined = await NatsTransport.join(options, { processId: 'member-1' });
    const host = await hosting;
    open.push(host, joined.link);
    return { host, member: joined.link, assignment: joined.assignment, options };
  }

  it('assigns indexes, answers requests both ways, unknown services and throwing handlers with a code', async () => {
    const { host, member, assignment } = await pair();
    expect([host.self, member.self, host.processes, member.processes]).toEqual([0, 1, 2, 2]);
    expect(assignment).toEqual({ index: 1, role: 'member' });
    expect(member.table.members.map((m) => m.processId)).toContain('member-1');
    host.serve('kernel', { request: (from, payload) => ({ kr: 0, from, echo: payload }) });
    member.serve('kernel', { request: async (from, payload) => ({ kr: 0, from, doubled: (payload as number) * 2 }) });
    member.serve('memory', { request: () => { throw new Error('handler bug'); } });
    expect(await member.request(0, 'kernel', { hi: 1 })).toEqual({ kr: 0, from: 1, echo: { hi: 1 } });
    expect(await host.request(1, 'kernel', 21)).toEqual({ kr: 0, from: 0, doubled: 42 });
    expect(await host.request(1, 'gateway', 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    expect(await host.request(1, 'memory', 1)).toEqual({ kr: KERN_FAILURE });
    expect(await host.request(0, 'kernel', 'self')).toEqual({ kr: 0, from: 0, echo: 'self' });
    expect(await host.request(7, 'kernel', 1)).toEqual({ kr: KERN_INVALID_ARGUMENT });
    const started = performance.now();
    const rounds = 200;
    for (let i = 0; i < rounds; i++) await host.request(1, 'kernel', i);
    console.log(`cluster-transport: request RTT over loopback ≈ ${((performance.now() - started) / rounds * 1000).toFixed(0)} µs`);
  });

  it('delivers 2,000 posts in order without duplicates, both ways', async () => {
    const { host, member } = await pair();
    const atMember: number[] = [];
    const atHost: number[] = [];
    member.serve('gateway', { message: (_from, payload) => { atMember.push(payload as number); } });
    host.serve('gateway', { message: (_from, payload) => { atHost.push(payload as number); } });
    const started = performance.now();
    for (let i = 0; i < 2000; i++) {
      host.post(1, 'gateway', i);
      member.post(0, 'gateway', i);
    }
    await until(() => atMember.length === 2000 && atHost.length === 2000);
    const seconds = (performance.now() - started) / 1000;
    console.log(`cluster-transport: ≈ ${Math.round(4000 / seconds)} posts/s (2 × 2,000 concurrently)`);
    const expected = Array.from({ length: 2000 }, (_, i) => i);
    expect(atMember).toEqual(expected);
    expect(atHost).toEqual(expected);
    await until(() => host.statistics().inFlight === 0 && member.statistics().inFlight === 0);
  });

  it('carries a 3 MiB payload each way (fragmented under max_payload)', async () => {
    const { host, member } = await pair();
    const big = randomBytes(3 * 1024 * 1024);
    member.serve('memory', { request: (_from, payload) => ({ kr: 0, page: payload }) });
    const answer = await host.request(1, 'memory', big) as { kr: number; page: Uint8Array };
    expect(answer.kr).toBe(0);
    expect(Buffer.compare(Buffer.from(answer.page), big)).toBe(0);
    expect(member.statistics().received).toBeGreaterThanOrEqual(7);
  });

  it('delivers nothing a rogue client publishes: garbage, forged and replayed frames are dropped and counted', async () => {
    const { host, member, options } = await pair();
    const got: unknown[] = [];
    member.serve('gateway', { message: (_from, payload) => { got.push(payload); } });
    const rogue = await connect({ servers: server.url, user: server.rogue.user, pass: server.rogue.pass });
    try {
      const inbox = subjects.inbox(options.name!, member.clusterId, 1);
      const captured: Uint8Array[] = [];
      const tap = rogue.subscribe(inbox, { callback: (_error, msg) => { captured.push(Uint8Array.from(msg.data)); } });
      await rogue.flush();
      for (let i = 0; i < 5; i++) host.post(1, 'gateway', `genuine ${i}`);
      await until(() => got.length === 5 && captured.length >= 5);
      tap.unsubscribe();
      const before = member.statistics();
      const forged = encodeFrame(randomBytes(32), inbox, { kind: FrameKind.data, flags: FLAG_FIRST | FLAG_LAST, from: 0,
        stamp: 1e12, seq: 6, ack: 0, payload: serialize([0, 'gateway', 'forged']) });
      rogue.publish(inbox, randomBytes(100));
      rogue.publish(inbox, new Uint8Array(0));
      rogue.publish(inbox, forged);
      for (const frame of captured) rogue.publish(inbox, frame); // replays
      for (const frame of captured) rogue.publish(subjects.inbox(options.name!, member.clusterId, 0), frame); // wrong subject
      await rogue.flush();
      host.post(1, 'gateway', 'after');
      await until(() => got.length === 6);
      await until(() => member.statistics().rejected - before.rejected >= 3 &&
        member.statistics().duplicates - before.duplicates >= captured.length);
      expect(got).toEqual([0, 1, 2, 3, 4].map((i) => `genuine ${i}`).concat('after'));
      await until(() => host.statistics().rejected >= captured.length);
      expect(host.isDown(1) || member.isDown(0)).toBe(false);
    } finally {
      await rogue.close();
    }
  });

  it('a peer killed without goodbye is down after deadAfterMs: onPeerDown once, requests answer KERN_NODE_DOWN', async () => {
    const { host, member } = await pair({ heartbeatMs: 50, deadAfterMs: 500 });
    member.serve('kernel', { request: () => new Promise(() => undefined) }); // never answers
    const downs: number[] = [];
    host.onPeerDown((proc) => downs.push(proc));
    const inFlight = host.request(1, 'kernel', 'wait');
    await until(() => member.statistics().delivered >= 1);
    await member.crashForTest();
    expect(await inFlight).toEqual({ kr: KERN_NODE_DOWN });
    expect(downs).toEqual([1]);
    expect(host.isDown(1)).toBe(true);
    expect(await host.request(1, 'kernel', 'late')).toEqual({ kr: KERN_NODE_DOWN });
    host.post(1, 'kernel', 'dropped');
    expect(host.statistics().peersDown).toBe(1);
  });

  it('a stalled process does not take its silent peers for dead', async () => {
    const { host, member } = await pair({ heartbeatMs: 50, deadAfterMs: 400 });
    member.serve('kernel', { request: () => ({ kr: 0 }) });
    const busyUntil = performance.now() + 1_000; // both ends stall: a long synchronous turn
    while (performance.now() < busyUntil) { /* stalled */ }
    expect(await host.request(1, 'kernel', 'still there?')).toEqual({ kr: 0 });
    expect(host.isDown(1) || member.isDown(0)).toBe(false);
    expect(host.statistics().stalls).toBeGreaterThanOrEqual(1);
  });

  it('a peer that closes says goodbye: down at once, long before deadAfterMs', async () => {
    const { host, member } = await pair({ deadAfterMs: 60_000 });
    const downs: number[] = [];
    host.onPeerDown((proc) => downs.push(proc));
    const started = performance.now();
    await member.close();
    await member.close(); // idempotent
    await until(() => downs.length === 1);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(member.isDown(1)).toBe(true);
    expect(await member.request(0, 'kernel', 1)).toEqual({ kr: KERN_NODE_DOWN });
  });

  it('survives a server restart mid-stream: every frame once and in order, requests complete or answer a code', async () => {
    const { host, member } = await pair();
    const seen: number[] = [];
    member.serve('gateway', { message: (_from, payload) => { seen.push(payload as number); } });
    member.serve('kernel', { request: (_from, payload) => ({ kr: 0, echo: payload }) });
    const gaps: unknown[] = [];
    member.onGap((gap) => gaps.push(gap));
    const total = 5000;
    const answers: Promise<unknown>[] = [];
    let restarted: Promise<void> | undefined;
    for (let i = 0; i < total; i++) {
      host.post(1, 'gateway', i);
      if (i % 500 === 0) answers.push(host.request(1, 'kernel', i));
      if (i === 1000) restarted = server.restart();
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve)); // let the wire move
    }
    await restarted;
    await until(() => seen.length >= total, 25_000);
    expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
    for (const answer of await Promise.all(answers)) {
      expect(answer).toSatisfy((a: { kr: number; echo?: number }) => a.kr === 0 || a.kr === KERN_NODE_DOWN);
    }
    const stats = [host.statistics(), member.statistics()];
    expect(stats[0]!.reconnects).toBeGreaterThanOrEqual(1);
    expect(stats[1]!.reconnects).toBeGreaterThanOrEqual(1);
    expect(host.isDown(1) || member.isDown(0)).toBe(false);
    console.log(`cluster-transport: restart: gaps ${stats[1]!.gaps} (reported ${gaps.length}), ` +
      `retransmits ${stats[0]!.retransmits}, duplicates ${stats[1]!.duplicates}`);
    expect(gaps.length).toBe(stats[1]!.gaps);
  });

  it('a member cut off as a slow consumer (a rogue floods its inbox) loses nothing: resent in order', async () => {
    const slow = await startNatsServer({ config: 'max_pending: 1MB' });
    let flooder: ChildProcess | undefined;
    try {
      const { host, member, options } = await pair({ servers: slow.url, pass: slow.pass });
      const seen: number[] = [];
      member.serve('gateway', { message: (_from, payload) => { seen.push((payload as { i: number }).i); } });
      const gaps: unknown[] = [];
      member.onGap((gap) => gaps.push(gap));
      const inbox = subjects.inbox(options.name!, member.clusterId, 1);
      // The flood comes from another process: it must go on while this one stalls.
      const child = spawn(process.execPath, ['--input-type=module', '-e', FLOOD, slow.url, slow.rogue.user, slow.rogue.pass, inbox],
        { stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('..', import.meta.url)) });
      flooder = child;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      await Promise.race([new Promise((resolve) => child.stdout!.once('data', resolve)), exited]); // flooding now
      const total = 2000;
      for (let i = 0; i < total; i++) {
        host.post(1, 'gateway', { i, pad: new Uint8Array(1024) });
        if (i === 500) {
          const busyUntil = performance.now() + 1_500; // the member reads nothing meanwhile
          while (performance.now() < busyUntil) { /* stalled */ }
        }
        if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      await exited;
      await until(() => seen.length >= total, 25_000);
      expect(seen).toEqual(Array.from({ length: total }, (_, i) => i));
      const stats = member.statistics();
      expect(stats.disconnects).toBeGreaterThanOrEqual(1);
      expect(stats.rejected).toBeGreaterThan(0); // the flood itself
      expect(gaps.length).toBe(stats.gaps);
      console.log(`cluster-transport: slow consumer: gaps ${stats.gaps}, resent ${host.statistics().retransmits}, ` +
        `duplicates ${stats.duplicates}, flood frames rejected ${stats.rejected}`);
    } finally {
      if (flooder?.exitCode === null) flooder.kill('SIGKILL');
      await Promise.all(open.map((link) => link.close()));
      open = [];
      await slow.stop();
    }
  });

  it('rejects bad options and a join without the cluster secret, and a host times out naming who came', async () => {
    await expect(NatsTransport.host({ servers: server.url }, { members: 1 })).rejects.toThrow(/a cluster needs credentials/);
    await expect(NatsTransport.join({ servers: server.url, pass: 'x', name: 'no.dots' })).rejects.toThrow(RangeError);
    await expect(NatsTransport.host(optionsFor({ heartbeatMs: 100, deadAfterMs: 100 }), { members: 1 })).rejects.toThrow(RangeError);
    const options = optionsFor();
    const abort = new AbortController();
    const stranger = NatsTransport.join({ ...options, secret: 'not the cluster secret' }, { signal: abort.signal });
    await expect(NatsTransport.host(options, { members: 1, timeoutMs: 1_500 })).rejects.toThrow(/0 of 1 processes joined/);
    abort.abort(new Error('gave up'));
    await expect(stranger).rejects.toThrow(/gave up/);
  });
});
