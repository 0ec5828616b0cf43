/**
 * A workload run inside tasks by `norma stress`: bumps a shared 32-bit counter with Atomics.
 * Loaded by node workers through Task.execute, so it imports nothing from the host.
 */
import type { TaskContext } from '../../shared/context.js';

export function bump(context: TaskContext, address: number, times: number): { node: number; elapsedMs: number } {
  const bytes = context.view(address, Int32Array.BYTES_PER_ELEMENT);
  const counter = new Int32Array(bytes.buffer, bytes.byteOffset, 1);
  const started = performance.now();
  for (let i = 0; i < times; i++) Atomics.add(counter, 0, 1);
  return { node: context.node, elapsedMs: performance.now() - started };
}
