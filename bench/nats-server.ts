/**
 * A real nats-server for the cluster's tests and bench suite, on a loopback port: two users, `norma` (the
 * cluster's own credentials) and `rogue` (a client on the same server that is no cluster member,
 * with full publish/subscribe permissions, so tests can try to inject). No vitest import: a
 * globalSetup may use it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface NatsServer {
  /** 'nats://127.0.0.1:PORT' */
  readonly url: string;
  readonly port: number;
  readonly user: 'norma';
  readonly pass: string;
  readonly rogue: { readonly user: 'rogue'; readonly pass: string };
  readonly configPath: string;
  /** Stops the server (SIGTERM, SIGKILL after 2 s) and waits for it to exit; idempotent. */
  stop(): Promise<void>;
  /** Stops it, then starts it again on the same port with the same configuration. */
  restart(): Promise<void>;
}

const DEBIAN_PATH = '/usr/sbin/nats-server';

function executable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where nats-server is (PATH first, then Debian's /usr/sbin), or undefined when it is missing. */
export function natsServerPath(): string | undefined {
  const dirs = (process.env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const dir of dirs) {
    const candidate = join(dir, 'nats-server');
    if (executable(candidate)) return candidate;
  }
  return executable(DEBIAN_PATH) ? DEBIAN_PATH : undefined;
}

/** A port the kernel says is free now (a race with other programs is possible, and retried). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

function configText(port: number, pass: string, roguePass: string, extra: string): string {
  return [
    `listen: 127.0.0.1:${port}`,
    extra,
    'authorization {',
    '  users: [',
    `    { user: norma, password: "${pass}" }`,
    `    { user: rogue, password: "${roguePass}" }`,
    '  ]',
    '}',
    '',
  ].join('\n');
}

const START_DEADLINE_MS = 10_000;
const POLL_MS = 25;

export interface NatsServerOptions {
  /** Default: a free loopback port. */
  port?: number;
  /** More lines for the configuration file (e.g. 'max_pending: 1MB' to provoke slow consumers). */
  config?: string;
}

/** Starts nats-server and waits until it accepts connections. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = natsServerPath();
  if (binary === undefined) throw new Error('nats-server is not installed (Debian: apt-get install nats-server)');
  const port = options.port ?? await freePort();
  const pass = randomBytes(18).toString('base64url');
  const roguePass = randomBytes(18).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'norma-nats-'));
  const configPath = join(dir, 'nats.conf');
  writeFileSync(configPath, configText(port, pass, roguePass, options.config ?? ''));

  let child: ChildProcess | undefined;
  let output = '';

  const launch = async (): Promise<void> => {
    output = '';
    const started = spawn(binary, ['-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = started;
    // nats-server outlives a parent that exits without stop() (an uncaught error, a closed pipe).
    const orphaned = (): void => { started.kill('SIGKILL'); };
    process.once('exit', orphaned);
    started.once('exit', () => process.off('exit', orphaned));
    started.stderr?.setEncoding('utf8');
    started.stderr?.on('data', (chunk: string) => { output = (output + chunk).slice(-4000); });
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(`nats-server exited (${started.exitCode ?? started.signalCode}) while starting:\n${output}`);
      }
      if (await accepts(port)) return;
      if (Date.now() > deadline) {
        started.kill('SIGKILL');
        await exited(started);
        throw new Error(`nats-server did not accept connections on port ${port} within ${START_DEADLINE_MS} ms:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };

  const stop = async (): Promise<void> => {
    const running = child;
    child = undefined;
    if (running === undefined) return;
    const done = exited(running);
    running.kill('SIGTERM');
    const killer = setTimeout(() => running.kill('SIGKILL'), 2_000);
    await done;
    clearTimeout(killer);
  };

  await launch();
  let removed = false;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    user: 'norma',
    pass,
    rogue: { user: 'rogue', pass: roguePass },
    configPath,
    async stop() {
      await stop();
      if (!removed) {
        removed = true;
        rmSync(dir, { recursive: true, force: true });
      }
    },
    async restart() {
      if (removed) throw new Error('nats-server was stopped for good');
      await stop();
      await launch();
    },
  };
}
