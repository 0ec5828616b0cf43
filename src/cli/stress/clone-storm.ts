/**
 * clone storm: a thread in a task on every node grows a tree of tasks by task_create,
 * norma_task_create and norma_task_clone (of itself or of a task it made, onto the node its
 * PRNG draws), allocates memory in each child and terminates them again, all under one paged
 * ledger too small for every tree at once. KERN_RESOURCE_SHORTAGE (a COPY region's private
 * copy or a vm_allocate past the ledger) is expected and counted; any other answer is a
 * violation. Checked: every task made is terminated, and the ledger's balance comes back to
 * what the trees' roots hold, then to 0.
 */
import {
  KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY,
} from '../../shared/constants.js';
import type { ThreadContext } from '../../shared/context.js';
import { krName } from '../../shared/errors.js';
import { Prng } from './prng.js';
import type { Scenario, ScenarioRun } from './runner.js';
import { CONTROL_BYTES, Recorder, type ThreadReport } from './thread-kit.js';

/** Tasks a thread keeps alive at most; the ledger's pages per node (fewer than the trees would take). */
const MAX_LIVE = 6;
const LEDGER_PAGES_PER_NODE = 14;
const CALLS = ['task_create', 'norma_task_create', 'norma_task_clone'] as const;

type Stormed = ThreadReport & { created: number; terminated: number };

/** A thread's storm: `iterations` creations (0: until told to stop), each followed by a vm_allocate in the child. */
export async function storm(context: ThreadContext, control: number, index: number, nodes: number, iterations: number,
  seed: number): Promise<Stormed> {
  const recorder = new Recorder(context.view(control, CONTROL_BYTES, Int32Array));
  const prng = Prng.derive(seed, 2, index);
  const mach = context.mach;
  const self = (await mach.mach_task_self()).name;
  const live: number[] = [];
  let created = 0, terminated = 0;
  const expect = (call: string, kr: number, shortageOk: boolean): boolean => {
    recorder.checked();
    if (kr === KERN_SUCCESS) return true;
    if (kr === KERN_RESOURCE_SHORTAGE && shortageOk) recorder.count(`${call}: KERN_RESOURCE_SHORTAGE`);
    else recorder.violation('expected-returns', `storm ${index}: ${call} answered ${krName(kr)}`);
    return false;
  };
  const end = async (name: number) => {
    const started = performance.now();
    const kr = await mach.task_terminate(name);
    recorder.took('task_terminate', started);
    if (expect('task_terminate', kr, false)) terminated++;
    await mach.mach_port_deallocate(name);
  };
  try {
    for (let i = 0; recorder.running(i, iterations); i++) {
      // Five draws an iteration whatever happens, so the sequence drawn is the seed's alone.
      const call = CALLS[prng.below(CALLS.length)]!;
      const parentDraw = prng.next();
      const node = prng.below(nodes);
      const pages = prng.between(1, 4);
      const endDraw = prng.next();
      const parent = parentDraw % (live.length + 1) === 0 ? self : live[parentDraw % (live.length + 1) - 1]!;
      let started = performance.now();
      const reply = call === 'task_create' ? await mach.task_create(parent, null, 0, true)
        : await mach[call](parent, true, node);
      recorder.took(call, started);
      recorder.op();
      if (expect(call, reply.kr, true)) {
        live.push(reply.child_task!);
        created++;
        started = performance.now();
        const allocated = await mach.vm_allocate(reply.child_task!, 0, pages * context.pageSize, true);
        recorder.took('vm_allocate', started);
        expect('vm_allocate', allocated.kr, true);
      }
      if (live.length > MAX_LIVE || (live.length > 0 && endDraw % 3 === 0)) await end(live.splice(endDraw % live.length, 1)[0]!);
    }
  } catch (error) {
    recorder.violation('expected-returns', `storm ${index}: ${error instanceof Error ? error.message : String(error)}`);
  }
  for (const name of live.splice(0)) await end(name);
  return { ...recorder.report(prng), created, terminated };
}

async function run(run: ScenarioRun): Promise<void> {
  const { kernel, nodes } = run;
  const page = kernel.pageSize;
  const ledger = kernel.createLedger(LEDGER_PAGES_PER_NODE * nodes * page);
  const top = await run.root.create({ ledgers: [kernel.createLedger(Infinity), ledger] });
  const parents = [];
  for (let node = 0; node < nodes; node++) {
    const parent = await top.clone(node);
    // A page each task_create / norma_task_create child gets a private copy of, charged to the ledger.
    const copied = await parent.allocate(page);
    await parent.inherit(copied, page, VM_INHERIT_COPY);
    parents.push(parent);
  }
  const rootsHold = ledger.balance;
  const module = new URL(import.meta.url).href;
  const threads = await Promise.all(parents.map((parent, index) => parent.spawn(module, 'storm', run.control, index, nodes, run.iterations, run.seed)));
  const reports = await Promise.all(threads.map((thread, index) => run.join<Stormed>(`storm ${String(index).padStart(3, '0')}`, thread,
    ['expected-returns'])));
  let created = 0;
  for (const [index, report] of reports.entries()) {
    if (report === undefined) continue;
    run.check.equal('counters-exact', report.terminated, report.created, `storm ${index}: tasks terminated, against tasks created`);
    created += report.created;
  }
  run.results.count('tasks created', created);
  run.check.equal('counters-exact', ledger.balance, rootsHold, 'ledger balance once the trees are gone (bytes)');
  for (const task of [...parents, top]) await task.terminate();
  run.check.equal('counters-exact', ledger.balance, 0, 'ledger balance once the roots are gone too (bytes)');
}

export const cloneStorm: Scenario = {
  name: 'clone-storm',
  summary: 'clone storm: a thread per node grows trees by task_create / norma_task_create / norma_task_clone under a ledger too small for them all (KERN_RESOURCE_SHORTAGE counted)',
  checks: ['expected-returns', 'counters-exact'],
  expectedOps: (nodes, iterations) => nodes * iterations,
  run,
};
