import { defineConfig, type TestProjectInlineConfiguration } from 'vitest/config';
import { natsServerPath } from './test/cluster/nats-server.js';

/**
 * The suites that run a second time with every kernel's nodes split over two OS processes joined
 * by a real nats-server (test/cluster/global-setup.ts; bootKernel in test/helpers.ts).
 */
const CLUSTER_SUITES = [
  'test/vm-*.test.ts', 'test/task-create.test.ts', 'test/task-lifecycle.test.ts', 'test/norma-task-*.test.ts',
  'test/mach-msg.test.ts', 'test/mach-port.test.ts', 'test/port.test.ts', 'test/ipc-*.test.ts', 'test/kobject-calls.test.ts',
  'test/right.test.ts', 'test/name-space.test.ts',
];

const nats = natsServerPath();
if (nats === undefined) {
  console.warn([
    '',
    '  norma: the cluster pass did NOT run: nats-server was not found (PATH, /usr/sbin).',
    `  These suites run only once, in one process: ${CLUSTER_SUITES.join(' ')}`,
    '  and the cluster\'s own suites (test/cluster.test.ts, test/cluster-transport.test.ts) are skipped.',
    '  Install it to run them split over two processes too: apt-get install -y nats-server',
    '',
  ].join('\n'));
}

const cluster: TestProjectInlineConfiguration[] = nats === undefined ? [] : [{
  extends: true,
  test: { name: 'cluster', include: CLUSTER_SUITES, globalSetup: ['test/cluster/global-setup.ts'] },
}];

export default defineConfig({
  test: {
    // Kernels boot real worker threads; keep files in parallel but bounded on 2-core machines.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [{ extends: true, test: { name: 'norma', include: ['test/**/*.test.ts'] } }, ...cluster],
  },
});
