#!/usr/bin/env node
/**
 * The `norma` command: parses the command line and runs one command (demo.ts, stress.ts).
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { demo } from './demo.js';
import { stress } from './stress.js';

const USAGE = `usage: norma <command> [options]

commands:
  demo     the four task-creation calls, parent and child maps side by side
  stress   clones on every node bump one shared Atomics counter; checks the exact total

options:
  --nodes N        nodes to boot (default: demo 2, stress os.availableParallelism())
  --iterations N   stress: increments per task (default 1000000)
  --tasks N        stress: tasks per node (default 1)
  -h, --help       this text`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      nodes: { type: 'string' },
      iterations: { type: 'string' },
      tasks: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0];
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  const count = (value: string | undefined, fallback: number, name: string) => {
    const parsed = value === undefined ? fallback : Number(value);
    if (!Number.isSafeInteger(parsed) || parsed < 1) throw new RangeError(`--${name} must be a positive integer`);
    return parsed;
  };
  switch (command) {
    case 'demo':
      await demo(count(values.nodes, 2, 'nodes'));
      return 0;
    case 'stress':
      return stress(count(values.nodes, availableParallelism(), 'nodes'),
        count(values.tasks, 1, 'tasks'), count(values.iterations, 1_000_000, 'iterations'));
    default:
      console.error(`norma: unknown command '${command}'\n\n${USAGE}`);
      return 2;
  }
}

// A reader that stops early (`norma demo | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (error: unknown) => {
  console.error(`norma: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
