/**
 * `norma node`: this process joins clusters through a NATS server and hosts the nodes a kernel
 * gives it (src/cluster/member.ts), until interrupted.
 */
import { parseArgs } from 'node:util';
import { Kernel } from '../kernel.js';
import { serveClusters } from '../cluster/member.js';
import { parseCommand, UsageError } from './args.js';

const HELP = `usage: norma node --nats nats://HOST:PORT [options]

Joins a norma cluster: waits on the NATS server for a kernel booted with
  Kernel.boot({ nodes, cluster: { nats, user, pass, join: N } })
to recruit this process, hosts the share of the nodes it is given (worker threads here), serves
it until that kernel shuts down or dies, then waits for the next one. Ctrl-C leaves.

options:
  --nats URL         the NATS server (several: comma-separated)          (required)
  --name NAME        the cluster's name; the kernel's cluster.name        (default norma)
  --user USER        NATS user (or NORMA_NATS_USER)
  --pass PASS        NATS password (better: NORMA_NATS_PASS; argv is visible to ps)
  --token TOKEN      NATS token (or NORMA_NATS_TOKEN)
  --nkey-seed SEED   NATS nkey seed (or NORMA_NATS_NKEY_SEED)
  --secret SECRET    the key cluster frames are signed with (or NORMA_CLUSTER_SECRET;
                     default: derived from the credentials, as the kernel does)
  --id ID            the id this process says hello with (default: random)
  --once             serve one cluster, then exit
  --quiet            no progress lines (joined, left), only errors
  -h, --help         this text`;

export async function nodeCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseCommand(() => parseArgs({
    args: [...argv],
    options: {
      nats: { type: 'string' }, name: { type: 'string' }, user: { type: 'string' }, pass: { type: 'string' },
      token: { type: 'string' }, 'nkey-seed': { type: 'string' }, secret: { type: 'string' }, id: { type: 'string' },
      once: { type: 'boolean' }, quiet: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  }));
  if (values.help === true) {
    console.log(HELP);
    return 0;
  }
  if (values.nats === undefined) throw new UsageError('--nats is required: the NATS server, nats://HOST:PORT');
  const servers = values.nats.split(',').map((url) => url.trim());
  if (servers.some((url) => !/^(nats|tls):\/\/[^\s]+$/.test(url))) throw new UsageError(`--nats must be nats://HOST:PORT, not '${values.nats}'`);
  // An empty variable is no value (a shell's `VAR= norma node` clears it).
  const env = Object.fromEntries(Object.entries(process.env).filter(([, value]) => value !== ''));
  const connect = {
    servers, name: values.name ?? 'norma',
    user: values.user ?? env['NORMA_NATS_USER'], pass: values.pass ?? env['NORMA_NATS_PASS'],
    token: values.token ?? env['NORMA_NATS_TOKEN'], nkeySeed: values['nkey-seed'] ?? env['NORMA_NATS_NKEY_SEED'],
    secret: values.secret ?? env['NORMA_CLUSTER_SECRET'],
  };
  if (connect.user === undefined && connect.token === undefined && connect.nkeySeed === undefined && connect.secret === undefined) {
    throw new UsageError('a cluster needs credentials: --user and --pass (or NORMA_NATS_USER / NORMA_NATS_PASS), --token, --nkey-seed or --secret');
  }
  const abort = new AbortController();
  const leave = (): void => abort.abort();
  process.once('SIGINT', leave);
  process.once('SIGTERM', leave);
  const log = (line: string): void => { if (values.quiet !== true) console.error(`norma node: ${line}`); };
  log(`waiting on ${servers.join(',')} for a kernel of cluster '${connect.name}'`);
  try {
    await serveClusters(connect, async (nodes, pageSize, nodeBase) => (await Kernel.boot({ nodes, pageSize, nodeBase })).asLocalKernel(), {
      processId: values.id, once: values.once, signal: abort.signal, log,
    });
  } finally {
    process.off('SIGINT', leave);
    process.off('SIGTERM', leave);
  }
  return 0;
}
