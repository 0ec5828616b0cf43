/**
 * The cluster pass's setup: a real nats-server on a loopback port and a pool of `norma node`
 * processes (the shipped command, from dist/) waiting on it. Each kernel a test boots
 * (bootKernel in test/helpers.ts) recruits one of them and hosts its other nodes there; the pool
 * serves kernel after kernel. Everything is stopped when the run ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startNatsServer } from './nats-server.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
/**
 * Test files run two at a time (maxWorkers), each booting one kernel at a time: each vitest
 * worker (VITEST_POOL_ID) gets its own cluster name and two `norma node` processes, so two
 * kernels never race for the same process, and one that is still leaving its last kernel is
 * covered by the other.
 */
export const POOL_WORKERS = 2;
const MEMBERS_PER_WORKER = 2;

/** The cluster name the pool of vitest worker `poolId` (VITEST_POOL_ID, from 1) serves. */
export function poolName(base: string, poolId: string | undefined): string {
  const id = Number(poolId ?? 1);
  return `${base}-${((Number.isInteger(id) && id > 0 ? id : 1) - 1) % POOL_WORKERS + 1}`;
}

export interface ClusterTestContext {
  readonly nats: string;
  readonly name: string;
  readonly user: string;
  readonly pass: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    normaCluster: ClusterTestContext;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startNatsServer();
  const name = `test-${randomUUID().slice(0, 8)}`;
  const members: ChildProcess[] = Array.from({ length: POOL_WORKERS * MEMBERS_PER_WORKER }, (_, index) =>
    spawn(process.execPath, [CLI, 'node', '--quiet', '--nats', server.url, '--name', poolName(name, String(1 + (index % POOL_WORKERS)))], {
      env: { ...process.env, NORMA_NATS_USER: server.user, NORMA_NATS_PASS: server.pass },
      stdio: ['ignore', 'ignore', 'inherit'],
    }));
  project.provide('normaCluster', { nats: server.url, name, user: server.user, pass: server.pass });
  return async () => {
    await Promise.all(members.map((member) => new Promise<void>((resolve) => {
      if (member.exitCode !== null || member.signalCode !== null) return resolve();
      const timer = setTimeout(() => member.kill('SIGKILL'), 3000);
      member.once('exit', () => { clearTimeout(timer); resolve(); });
      member.kill('SIGTERM');
    })));
    await server.stop();
  };
}
