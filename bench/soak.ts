/**
 * Soak: issue 7 item 5, "flat under a long run". Not a unit test and not a bench suite: a load
 * held for minutes, sampled every few seconds.
 *
 *   npm run soak -- [--minutes N] [--quick] [--interval S] [--senders N]
 *   node --expose-gc dist/bench/soak.js ...            (after npm run build:bench)
 *
 *   --minutes N    how long the load runs (default 3.5)
 *   --quick        one minute, a line every 5 s: a smoke test
 *   --interval S   seconds per window and printed line (default 10)
 *   --senders N    concurrent sender-task loops (default 16)
 *
 * On two nodes: a service port whose receive right moves between a holder task on each node
 * every 250 ms (MOVE_RECEIVE in a message; the holder drains the queue while it holds it);
 * short-lived sender tasks, made by a spawner on node 0 on both nodes in turn, that inherit a
 * send right to the service (mach_ports_register), send two messages and are terminated; and a
 * task on node 1 allocating and destroying ports in a loop. Each window prints each node's heap
 * (asked of the node: a probe task there reports its isolate's heap, after a full GC when run
 * with --expose-gc), the host's heap, the migration times' p50/p99, tasks and ports made, and
 * failures by code. At the end: a verdict (first window against last, LIMITS in soak-report.ts),
 * exit status 1 unless flat, and bench/out/soak.{json,csv,svg}.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  Kernel, KernError, MACH_MSG_TYPE_MAKE_SEND, MACH_PORT_LIMITS_INFO, MACH_PORT_QLIMIT_MAX, krName, type Task,
} from 'norma-rt';
import type { HolderResult, NodeSample } from './fixtures/soak-task.js';
import { STOP_ID } from './fixtures/soak-task.js';
import { machineInfo, progress } from './report.js';
import {
  addCounts, header, judge, line, percentile, renderVerdict, writeSoak, type SoakOptions, type SoakResult,
  type SoakWindow,
} from './soak-report.js';

const FIXTURE = new URL('./fixtures/soak-task.js', import.meta.url);
/** Names the host gives rights it inserts: the peer holder's mailbox, the service's send right. */
const PEER = 0x7703;
const SERVICE = 0x7803;
/** How long the end of the run (senders finishing, the service draining) may take before we call it hung. */
const DRAIN_GRACE_MS = 60_000;

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: soak.js [--minutes N] [--quick] [--interval S] [--senders N]\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): SoakOptions {
  let minutes: number | undefined;
  let intervalS: number | undefined;
  let senders = 16;
  let quick = false;
  const number = (flag: string, value: string | undefined): number => {
    const n = Number(value);
    if (value === undefined || !(n > 0)) usage(`${flag} needs a positive number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i]!.split('=', 2) as [string, string | undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    if (flag === '--quick') quick = true;
    else if (flag === '--minutes') minutes = number(flag, value());
    else if (flag === '--interval') intervalS = number(flag, value());
    else if (flag === '--senders') senders = Math.round(number(flag, value()));
    else usage(`unknown option ${argv[i]}`);
  }
  // A churn batch holds node 1's event loop from start to end (a port call in task code answers
  // without leaving the node), so batches are small: the churn shares the node, not starves it.
  return {
    minutes: minutes ?? (quick ? 1 : 3.5), intervalS: intervalS ?? (quick ? 5 : 10), senders,
    messages: 2, periodMs: 250, churnBatch: 100, quick,
  };
}

/** Failures by where and code, counted per window. */
class Failures {
  #window: Record<string, number> = {};

  kr(where: string, kr: number): void { this.#add(`${krName(kr)} (${where})`); }

  thrown(where: string, error: unknown): void {
    if (error instanceof KernError) this.kr(where, error.kr);
    else this.#add(`${error instanceof Error ? `${error.name}: ${error.message.slice(0, 60)}` : String(error)} (${where})`);
  }

  /** The window's failures, and a fresh window. */
  take(): Record<string, number> {
    const window = this.#window;
    this.#window = {};
    return window;
  }

  #add(key: string): void { this.#window[key] = (this.#window[key] ?? 0) + 1; }
}

interface Counters { tasks: number; messages: number; ports: number }

/** A send right to `name` in `from`, inserted into `to` as `as`. */
async function giveSend(from: Task, name: number, to: Task, as: number): Promise<void> {
  const right = await from.extractRight(name, MACH_MSG_TYPE_MAKE_SEND);
  await to.insertRight(as, right, right.type);
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  const kernel = await Kernel.boot({ nodes: 2 });
  const failures = new Failures();
  const counters: Counters = { tasks: 0, messages: 0, ports: 0 };
  let running = true;
  try {
    const make = (node: number): Promise<Task> => kernel.bootstrapTask.createOn(node, { inheritMemory: false });
    const [holder0, holder1, spawner, churner, probe0, probe1] = await Promise.all([0, 1, 0, 1, 0, 1].map(make));
    const probes = [probe0!, probe1!];

    // The service starts in holder 0, each holder can send to the other's mailbox, and the
    // spawner's children inherit a send right to the service.
    const mailboxes = await Promise.all([holder0!.allocatePort(), holder1!.allocatePort()]);
    await giveSend(holder0!, mailboxes[0], holder1!, PEER);
    await giveSend(holder1!, mailboxes[1], holder0!, PEER);
    const service = await holder0!.allocatePort();
    await holder0!.setPortAttributes(service, MACH_PORT_LIMITS_INFO, { queue_limit: MACH_PORT_QLIMIT_MAX });
    await giveSend(holder0!, service, spawner!, SERVICE);
    await spawner!.registerPorts([SERVICE]);

    // A first sample loads the module on both nodes and starts their utilization counters.
    const sampleNodes = async (): Promise<NodeSample[]> =>
      Promise.all(probes.map(async (probe) => await probe.execute(FIXTURE, 'sample') as NodeSample));
    const gc = (await sampleNodes()).every((s) => s.gc);
    if (!gc) progress('no --expose-gc: node heaps are sampled without a GC first, so they include garbage');

    const holders = [
      holder0!.execute(FIXTURE, 'holder', mailboxes[0], PEER, service, options.periodMs),
      holder1!.execute(FIXTURE, 'holder', mailboxes[1], PEER, 0, options.periodMs),
    ] as Promise<HolderResult>[];
    let holdersDone = false;
    const holdersSettled = Promise.allSettled(holders).then((results) => {
      holdersDone = true;
      // A holder that answers a kr counted it on its node already.
      results.forEach((r, node) => { if (r.status === 'rejected') failures.thrown(`holder ${node}`, r.reason); });
    });

    const senderLoop = async (node: number): Promise<void> => {
      while (running) {
        let child: Task | undefined;
        try {
          child = await spawner!.createOn(node, { inheritMemory: false });
          counters.tasks++;
          const { sent, kr } = await child.execute(FIXTURE, 'send', options.messages) as { sent: number; kr: number };
          counters.messages += sent;
          if (kr !== 0) failures.kr('sender mach_msg', kr);
        } catch (error) {
          failures.thrown(child === undefined ? 'task create' : 'sender execute', error);
          await sleep(50); // a failing call answers at once: do not spin on it
        } finally {
          if (child !== undefined) await child.terminate().catch((error: unknown) => failures.thrown('task_terminate', error));
        }
      }
    };
    const churnLoop = async (): Promise<void> => {
      while (running) {
        try {
          const { made, kr } = await churner!.execute(FIXTURE, 'churnPorts', options.churnBatch) as { made: number; kr: number };
          counters.ports += made;
          if (kr !== 0) {
            failures.kr('churn', kr);
            await sleep(50);
          }
        } catch (error) {
          failures.thrown('churn execute', error);
          await sleep(50);
        }
      }
    };

    const started = performance.now();
    const loops = [
      ...Array.from({ length: options.senders }, (_, i) => senderLoop(i % 2)),
      churnLoop(),
    ];
    const windows: SoakWindow[] = [];
    const totals = { tasks: 0, messages: 0, drained: 0, ports: 0, migrations: 0, errors: {} as Record<string, number> };
    let seen: Counters = { ...counters };
    /** Closes a window: samples the nodes and the host, and takes the counters since the last. */
    const closeWindow = async (): Promise<SoakWindow> => {
      const samples = await sampleNodes();
      const memory = process.memoryUsage();
      const migrations = samples.flatMap((s) => s.migrations);
      const errors = failures.take();
      for (const s of samples) addCounts(errors, Object.fromEntries(s.errors));
      const now = { ...counters };
      const elapsedS = (performance.now() - started) / 1000;
      const window: SoakWindow = {
        elapsedS,
        durationS: elapsedS - (windows.at(-1)?.elapsedS ?? 0),
        heapMB: samples.map((s) => s.heapUsed / 2 ** 20),
        heapBeforeGcMB: samples.map((s) => s.heapBeforeGc / 2 ** 20),
        heapTotalMB: samples.map((s) => s.heapTotal / 2 ** 20),
        busy: samples.map((s) => s.busy),
        hostHeapMB: memory.heapUsed / 2 ** 20,
        rssMB: memory.rss / 2 ** 20,
        migrations: migrations.length,
        migrationP50Ms: percentile(migrations, 50),
        migrationP99Ms: percentile(migrations, 99),
        migrationMaxMs: migrations.length === 0 ? NaN : Math.max(...migrations),
        tasks: now.tasks - seen.tasks,
        messages: now.messages - seen.messages,
        drained: samples.reduce((sum, s) => sum + s.drained, 0),
        ports: now.ports - seen.ports,
        tasksTotal: now.tasks,
        portsTotal: now.ports,
        errors,
      };
      seen = now;
      totals.migrations += window.migrations;
      totals.drained += window.drained;
      addCounts(totals.errors, errors);
      return window;
    };

    process.stdout.write(`soak: ${options.minutes} min, a line every ${options.intervalS} s, ${options.senders} sender loops\n${header()}\n`);
    const end = started + options.minutes * 60_000;
    for (let next = started + options.intervalS * 1000; next <= end + 1; next += options.intervalS * 1000) {
      await sleep(Math.max(0, next - performance.now()));
      if (holdersDone) break;
      const window = await closeWindow();
      windows.push(window);
      process.stdout.write(`${line(window)}\n`);
    }

    // The end: no new senders; once every sender's messages are queued a STOP follows them, the
    // holder that receives it tells the other, and both end. The service must have drained all.
    running = false;
    const watchdog = setTimeout(() => {
      progress(`the end of the run hung for ${DRAIN_GRACE_MS / 1000} s (senders or holders never finished); ` +
        `open: ${process.getActiveResourcesInfo().join(', ')}`);
      process.exit(1);
    }, DRAIN_GRACE_MS);
    watchdog.unref();
    await Promise.all(loops);
    if (!holdersDone) {
      const stopper = await spawner!.createOn(0, { inheritMemory: false });
      const { kr } = await stopper.execute(FIXTURE, 'send', 1, STOP_ID) as { kr: number };
      if (kr !== 0) failures.kr('stop send', kr);
      await stopper.terminate();
    }
    await holdersSettled;
    const tail = await closeWindow();
    clearTimeout(watchdog);
    totals.tasks = counters.tasks;
    totals.messages = counters.messages;
    totals.ports = counters.ports;
    process.stdout.write(`after the load stopped and the service drained: ${tail.migrations} more migrations, ` +
      `${tail.drained} more messages drained, errors ${JSON.stringify(tail.errors)}\n\n`);

    const result: SoakResult = {
      machine: machineInfo(), options, gc, windows, totals,
      verdict: judge(windows, totals.errors, totals.messages, totals.drained),
    };
    process.stdout.write(renderVerdict(result));
    const files = writeSoak(result);
    progress(`→ ${files.map((file) => fileURLToPath(file)).join(', ')}`);
    if (!result.verdict.flat) process.exitCode = 1;
  } finally {
    running = false;
    await kernel.shutdown();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
