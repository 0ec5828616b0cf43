// Two threads, one on each node, in lockstep over one shared counter.
//   node examples/barrier.mjs      (after npm install)
// Each thread adds 1 per round, then waits at a Barrier in the same shared page: after every
// round both see the counter at 2 × round. Atomics and the barrier work across nodes because a
// clone shares the very SharedArrayBuffer.
import { fileURLToPath } from 'node:url';
import { Barrier, BARRIER_BYTES, Kernel, VM_INHERIT_SHARE } from 'norma-rt';

/** A thread's entry: receives (context, ...args). */
export async function step(context, address, parties, rounds) {
  const counter = context.view(address, 4, Int32Array);              // any typed-array type
  const barrier = new Barrier(context.view(address + 8, BARRIER_BYTES, Int32Array), parties);
  for (let round = 1; round <= rounds; round++) {
    Atomics.add(counter, 0, 1);
    await barrier.wait(context);                                      // never blocks the node
    if (Atomics.load(counter, 0) < parties * round) throw new Error(`round ${round}: a party ran ahead`);
    await barrier.wait(context);
  }
  return context.node;
}

export async function main(rounds = 100) {
  const kernel = await Kernel.boot({ nodes: 2 });
  try {
    const parent = await kernel.bootstrapTask.createOn(0);
    const address = await parent.allocate(kernel.pageSize);
    await parent.inherit(address, kernel.pageSize, VM_INHERIT_SHARE);
    const child = await parent.clone(1);                               // shares the page
    const threads = await Promise.all([parent, child].map((task) =>
      task.spawn(import.meta.url, 'step', address, 2, rounds)));
    const nodes = await Promise.all(threads.map((thread) => thread.join()));
    const total = new Int32Array((await parent.read(address, 4)).buffer)[0];
    console.log(`threads on nodes ${nodes.join(' and ')} counted ${total} in ${rounds} rounds`);
    return { nodes, total };
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
