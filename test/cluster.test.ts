/**
 * A kernel over two OS processes joined by a real nats-server (issue 12): booting and joining,
 * tasks, memory and messages across, a killed node process, a server restart mid-run, a rogue
 * client on the same server, and `norma node` itself. Each test stops what it starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect } from 'nats';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  Kernel, KERN_NODE_DOWN, KERN_PROTECTION_FAILURE, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND,
  MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_MSG_TYPE_PORT_SEND, MACH_NOTIFY_DEAD_NAME,
  MACH_PORT_NULL, MACH_PORT_TYPE_DEAD_NAME, MACH_PORT_RIGHT_RECEIVE, VM_INHERIT_SHARE, type ClusterOptions, type Task,
} from 'norma-rt';
import { natsServerPath, startNatsServer, type NatsServer } from './cluster/nats-server.js';

const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const SEND = 0x7001;

const kernels: Kernel[] = [];
const members: ChildProcess[] = [];
let server: NatsServer;

function options(extra: Partial<ClusterOptions> = {}): ClusterOptions {
  return { nats: server.url, user: server.user, pass: server.pass, ...extra };
}

async function boot(nodes: number, cluster: Partial<ClusterOptions> = {}): Promise<Kernel> {
  const kernel = await Kernel.boot({ nodes, cluster: options({ spawn: 1, ...cluster }) });
  kernels.push(kernel);
  return kernel;
}

/** `norma node` started here (so a test can kill it), waiting on the server as `name`. */
function startMember(name: string, extraEnv: Record<string, string> = {}): ChildProcess {
  const member = spawn(process.execPath, [CLI, 'node', '--nats', server.url, '--name', name, '--once'], {
    env: { ...process.env, NORMA_NATS_USER: server.user, NORMA_NATS_PASS: server.pass, ...extraEnv }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  members.push(member);
  return member;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A receiver task on `node` with a port; `sender` gets a send right to it under SEND. */
async function wire(kernel: Kernel, senderNode: number, receiverNode: number) {
  const receiver = await kernel.bootstrapTask.createOn(receiverNode);
  const sender = await kernel.bootstrapTask.createOn(senderNode);
  const port = await receiver.allocatePort(MACH_PORT_RIGHT_RECEIVE);
  await sender.insertRight(SEND, await receiver.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_PORT_SEND);
  return { sender, receiver, port };
}

/** One RPC: `client` sends on SEND with a send-once reply port, `server` answers it, the client receives. */
async function rpc(client: Task, server: Task, port: number, reply: number, id: number): Promise<number> {
  await client.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, localPort: reply,
    localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, id, body: Uint8Array.of(id & 0xff) });
  const request = await server.receive(port);
  await server.send({ remotePort: request.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: request.id + 100 });
  return (await client.receive(reply)).id;
}

describe.skipIf(natsServerPath() === undefined)('a kernel over two processes joined by nats-server', () => {
  beforeAll(async () => { server = await startNatsServer(); });
  afterAll(async () => { await server?.stop(); });
  afterEach(async () => {
    await Promise.all(kernels.splice(0).map((kernel) => kernel.shutdown()));
    for (const member of members.splice(0)) if (member.exitCode === null && member.signalCode === null) member.kill('SIGKILL');
  });

  it('boots with a spawned process hosting the last node; tasks, memory, RPCs and statistics reach it by its global index', async () => {
    const kernel = await boot(3);
    expect(kernel.nodes).toBe(3);
    const figures = (await kernel.clusterStatistics())!;
    expect(figures.map(({ process, nodes, down }) => ({ process, nodes, down }))).toEqual([
      { process: 0, nodes: [0, 1], down: false }, { process: 1, nodes: [2], down: false }]);

    const parent = await kernel.bootstrapTask.create();
    const shared = await parent.allocate(8192);
    await parent.write(shared, Uint8Array.of(1, 2, 3));
    await parent.inherit(shared, 8192, VM_INHERIT_SHARE);
    const child = await parent.createOn(2);
    expect(child.node).toBe(2);
    expect(await child.info()).toMatchObject({ node: 2, regionCount: 1 });
    expect(await child.read(shared, 3)).toEqual(Uint8Array.of(1, 2, 3));
    await child.write(shared + 1, Uint8Array.of(9));
    expect(await parent.read(shared, 3)).toEqual(Uint8Array.of(1, 9, 3));
    await expect(child.view(shared, 3)).rejects.toMatchObject({ kr: KERN_PROTECTION_FAILURE });

    const { sender, receiver, port } = await wire(kernel, 0, 2);
    const reply = await sender.allocatePort(MACH_PORT_RIGHT_RECEIVE);
    for (let id = 1; id <= 5; id++) expect(await rpc(sender, receiver, port, reply, id)).toBe(id + 100);
    expect((await kernel.statistics()).map((node) => node.node)).toEqual([0, 1, 2]);
    expect((await kernel.clusterStatistics())![1]!.gateway).toMatchObject({ delivered: expect.any(Number) });
  }, 60_000);

  it('a node process killed mid-call: the call fails with KERN_NODE_DOWN, its ports become dead names with their notifications, later calls fail too', async () => {
    startMember('kill');
    const kernel = await Kernel.boot({ nodes: 2, cluster: options({ name: 'kill', join: 1 }) });
    kernels.push(kernel);
    const { sender, receiver, port } = await wire(kernel, 0, 1);
    const notify = await sender.allocatePort(MACH_PORT_RIGHT_RECEIVE);
    expect(await sender.requestNotification(SEND, MACH_NOTIFY_DEAD_NAME, 0, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE)).toBe(MACH_PORT_NULL);
    const pending = receiver.receive(port).then(() => 'received', (error: { kr: number }) => error.kr);
    members[0]!.kill('SIGKILL');
    expect(await pending).toBe(KERN_NODE_DOWN);
    await vi.waitFor(async () => expect(await sender.portType(SEND)).toBe(MACH_PORT_TYPE_DEAD_NAME), { timeout: 10_000 });
    expect((await sender.receive(notify)).id).toBe(MACH_NOTIFY_DEAD_NAME);
    await expect(receiver.info()).rejects.toMatchObject({ kr: KERN_NODE_DOWN });
    await expect(kernel.bootstrapTask.createOn(1)).rejects.toMatchObject({ kr: KERN_NODE_DOWN });
    expect((await kernel.clusterStatistics())!.map((figures) => figures.down)).toEqual([false, true]);
    expect((await kernel.statistics())[1]).toMatchObject({ node: 1, down: true });
  }, 60_000);

  it('a nats-server restart mid-run: every RPC completes or fails with a code, none hangs, and the cluster works again', async () => {
    const kernel = await boot(2);
    const { sender, receiver, port } = await wire(kernel, 0, 1);
    const reply = await sender.allocatePort(MACH_PORT_RIGHT_RECEIVE);
    const outcomes: { id: number; answer: number | string }[] = [];
    const running = (async () => {
      for (let id = 1; id <= 40; id++) {
        outcomes.push({ id, answer: await rpc(sender, receiver, port, reply, id).catch((error: { kr?: number }) => `kr ${error.kr}`) });
      }
    })();
    await vi.waitFor(() => expect(outcomes.length).toBeGreaterThanOrEqual(3), { timeout: 20_000 });
    await server.restart();
    await running;
    // Every call came back: with its own answer (the link resent what the restart lost), or a code.
    expect(outcomes).toHaveLength(40);
    for (const { id, answer } of outcomes) expect(answer === id + 100 || /^kr \d+$/.test(String(answer))).toBe(true);
    expect(await rpc(sender, receiver, port, reply, 77)).toBe(177);
    const transport = (await kernel.clusterStatistics())![0]!.transport!;
    expect(transport['reconnects']).toBeGreaterThanOrEqual(1);
  }, 90_000);

  it('a rogue client on the same server: what it publishes on the cluster subjects, forged or replayed, is dropped and counted, never delivered', async () => {
    const kernel = await boot(2);
    const { sender, receiver, port } = await wire(kernel, 0, 1);
    const rogue = await connect({ servers: server.url, user: server.rogue.user, pass: server.rogue.pass });
    try {
      const captured: { subject: string; data: Uint8Array }[] = [];
      const listening = rogue.subscribe('norma.>', { callback: (_error, msg) => { captured.push({ subject: msg.subject, data: msg.data }); } });
      await rogue.flush();
      await sender.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 1 });
      expect((await receiver.receive(port)).id).toBe(1);
      await vi.waitFor(() => expect(captured.length).toBeGreaterThan(0));
      listening.unsubscribe();
      await rogue.flush();
      const before = (await kernel.clusterStatistics())!;
      const subjects = [...new Set(captured.map((frame) => frame.subject))];
      for (const { subject, data } of captured) {
        rogue.publish(subject, data); // a replay
        const forged = Uint8Array.from(data);
        forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff; // a forgery
        rogue.publish(subject, forged);
      }
      for (const subject of subjects) rogue.publish(subject, new TextEncoder().encode('{"op":"deliver","export":1}'));
      await rogue.flush();
      await vi.waitFor(async () => {
        const after = (await kernel.clusterStatistics())!;
        const dropped = (figures: typeof after) => figures.reduce((sum, each) =>
          sum + (each.transport?.['rejected'] ?? 0) + (each.transport?.['duplicates'] ?? 0), 0);
        // Each captured frame twice (replayed, forged), and a made-up one per subject.
        expect(dropped(after) - dropped(before)).toBe(2 * captured.length + subjects.length);
      }, { timeout: 10_000 });
      await expect(receiver.receive(port, { timeout: 200 })).rejects.toMatchObject({ kr: expect.any(Number) });
      await sender.send({ remotePort: SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 2 });
      expect((await receiver.receive(port)).id).toBe(2);
    } finally {
      await rogue.close();
    }
  }, 60_000);

  it('a process with the wrong cluster secret never gets in: the kernel gives up naming how many joined', async () => {
    const member = startMember('secret', { NORMA_CLUSTER_SECRET: 'not the one' });
    await expect(Kernel.boot({ nodes: 2, cluster: options({ name: 'secret', join: 1, timeoutMs: 1500 }) }))
      .rejects.toMatchObject({ kr: KERN_NODE_DOWN, message: expect.stringContaining('0 of 1') });
    member.kill('SIGTERM');
    expect(await exited(member)).toBe(0);
  }, 30_000);

  it('norma node: --help describes it; bad or missing options exit 2 naming them', async () => {
    const run = (args: string[]) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'node', ...args], { env: { ...process.env, NORMA_NATS_USER: '', NORMA_NATS_PASS: '' } });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => { out += chunk; });
      child.stderr.on('data', (chunk: Buffer) => { out += chunk; });
      child.on('exit', (code) => resolve({ code, out }));
    });
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^usage: norma node --nats/);
    expect(await run([])).toMatchObject({ code: 2, out: expect.stringContaining('--nats is required') });
    expect(await run(['--nats', 'http://x'])).toMatchObject({ code: 2, out: expect.stringContaining('--nats must be') });
    expect(await run(['--nats', 'nats://127.0.0.1:1'])).toMatchObject({ code: 2, out: expect.stringContaining('credentials') });
  }, 60_000);
});
