#!/usr/bin/env node
/**
 * The `norma` command: picks the command and hands it the rest of the line (demo.ts,
 * stress.ts, bench.ts); each parses its own options and answers its own --help.
 */
import { demoCommand } from './demo.js';
import { benchCommand } from './bench.js';
import { stressCommand } from './stress.js';
import { nodeCommand } from './node.js';
import { UsageError } from './args.js';

const USAGE = `usage: norma <command> [options]

commands:
  demo     the four task-creation calls, parent and child maps side by side
  stress   scenarios run by threads on every node, invariants checked, a seed to replay (norma stress --help)
  bench    the bench suites: peers side by side, ratios, charts (norma bench --help)
  node     join a cluster through a NATS server and host nodes for it (norma node --help)

norma <command> --help describes a command.
npm start runs norma stress all: every scenario on all cores, a few seconds each.`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    switch (command) {
      case 'demo': return await demoCommand(rest);
      case 'stress': return await stressCommand(rest);
      case 'bench': return await benchCommand(rest);
      case 'node': return await nodeCommand(rest);
      default:
        console.error(`norma: unknown command '${command}'\n\n${USAGE}`);
        return 2;
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`norma ${command}: ${error.message}\n(norma ${command} --help lists the options)`);
    return 2;
  }
}

// A reader that stops early (`norma demo | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (error: unknown) => {
  console.error(`norma: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
  process.exitCode = 1;
});
