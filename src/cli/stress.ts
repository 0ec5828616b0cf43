/**
 * `norma stress`: clones on every node bump one shared Atomics counter; checks the exact total.
 */
import { Kernel } from '../kernel.js';
import type { Task } from '../task.js';

export async function stress(nodes: number, tasksPerNode: number, iterations: number): Promise<number> {
  const kernel = await Kernel.boot({ nodes });
  try {
    const root = kernel.bootstrapTask;
    const address = await root.allocate(kernel.pageSize);
    const tasks: Task[] = [];
    for (let node = 0; node < nodes; node++) {
      for (let i = 0; i < tasksPerNode; i++) tasks.push(await root.clone(node));
    }
    const workload = new URL('./workloads/counter.js', import.meta.url);
    console.error(`norma stress: ${tasks.length} task(s) on ${nodes} node(s), ${iterations} increments each`);
    const started = performance.now();
    let done = 0;
    const results = await Promise.all(tasks.map(async (task) => {
      const result = await task.execute(workload, 'bump', address, iterations) as { node: number; elapsedMs: number };
      console.error(`  task ${task.id} on node ${result.node}: ${result.elapsedMs.toFixed(1)} ms (${++done}/${tasks.length})`);
      return result;
    }));
    const elapsed = performance.now() - started;
    const view = await root.view(address, 4);
    const total = new Int32Array(view.buffer, view.byteOffset, 1)[0]!;
    const expected = tasks.length * iterations;
    console.log(`total ${total} (expected ${expected}) in ${elapsed.toFixed(1)} ms: ` +
      `${(expected / elapsed / 1000).toFixed(2)} M increments/s across ${new Set(results.map((r) => r.node)).size} node(s)`);
    return total === expected ? 0 : 1;
  } finally {
    await kernel.shutdown();
  }
}
