// Conway's Game of Life on a grid in shared task memory, rows split across a thread on every node.
//   node examples/life.mjs      (after npm install)
// One task per node (a task on node 0 and its clones, all mapping the same pages); each runs a
// thread that computes its band of rows, then waits at the library Barrier until every band of
// the generation is done. The grid is double-buffered: generation g reads one buffer and writes
// the other. The result is checked against the same simulation run by a single thread.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Barrier, BARRIER_BYTES, Kernel, VM_INHERIT_SHARE } from 'norma-rt';

/** Where the grids start in the region: the barrier comes first. */
const GRID = 64;

/** Bytes a width × height simulation takes: the barrier, then two grids of one byte per cell. */
export function layoutBytes(width, height) { return GRID + 2 * width * height; }

/** One generation for rows [from, to) of a torus: reads `src`, writes `dst` (one byte per cell). */
export function stepRows(src, dst, width, height, from, to) {
  for (let y = from; y < to; y++) {
    const up = ((y + height - 1) % height) * width;
    const row = y * width;
    const down = ((y + 1) % height) * width;
    for (let x = 0; x < width; x++) {
      const l = x === 0 ? width - 1 : x - 1;
      const r = x === width - 1 ? 0 : x + 1;
      const n = src[up + l] + src[up + x] + src[up + r] + src[row + l] + src[row + r] +
        src[down + l] + src[down + x] + src[down + r];
      dst[row + x] = n === 3 || (n === 2 && src[row + x] === 1) ? 1 : 0;
    }
  }
}

/**
 * Every party's loop over generations: its rows, then the barrier. `view(offset, bytes, type?)`
 * reaches the simulation's memory, `waiter` is what the Barrier waits with. Shared by the
 * threads below and by the piscina peer in bench/, so both run the very same simulation.
 */
export async function runBand(view, waiter, width, height, from, to, generations, parties) {
  const barrier = new Barrier(view(0, BARRIER_BYTES, Int32Array), parties);
  const cells = width * height;
  const grids = [view(GRID, cells), view(GRID + cells, cells)];
  for (let g = 0; g < generations; g++) {
    stepRows(grids[g % 2], grids[(g + 1) % 2], width, height, from, to);
    await barrier.wait(waiter);
  }
  return to - from;
}

/** A thread's entry: its band of rows of the simulation at `address`. */
export function band(context, address, width, height, from, to, generations, parties) {
  const view = (offset, bytes, type) => context.view(address + offset, bytes, type);
  return runBand(view, context, width, height, from, to, generations, parties);
}

/** A seeded random grid (about one cell in three alive), the same for every run with `seed`. */
export function seedGrid(width, height, seed = 1) {
  const grid = new Uint8Array(width * height);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < grid.length; i++) {
    state ^= state << 13; state ^= state >>> 17; state ^= state << 5;   // xorshift32
    grid[i] = (state >>> 0) % 3 === 0 ? 1 : 0;
  }
  return grid;
}

/** Rows [from, to) of band `i` of `parties` over `height` rows, as even as can be. */
export function bandOf(i, parties, height) {
  return [Math.floor((i * height) / parties), Math.floor(((i + 1) * height) / parties)];
}

/** A task on node 0 and a clone on each of nodes 1 .. nodes - 1, all mapping one region. */
export async function prepare(kernel, nodes, width, height) {
  const parent = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
  const size = Math.ceil(layoutBytes(width, height) / kernel.pageSize) * kernel.pageSize;
  const address = await parent.allocate(size);
  await parent.inherit(address, size, VM_INHERIT_SHARE);
  const clones = await Promise.all(Array.from({ length: nodes - 1 }, (_, i) => parent.clone(i + 1)));
  return { tasks: [parent, ...clones], address, width, height };
}

/**
 * One simulation on the first `parties` tasks of `prepared` (one thread each), from `grid`:
 * resolves to the final grid and the milliseconds from the first spawn to the last join.
 */
export async function simulate(prepared, parties, generations, grid) {
  const { tasks, address, width, height } = prepared;
  const [parent] = tasks;
  await parent.write(address, new Uint8Array(GRID));                   // a fresh barrier
  await parent.write(address + GRID, grid);
  const started = performance.now();
  const threads = await Promise.all(tasks.slice(0, parties).map((task, i) =>
    task.spawn(import.meta.url, 'band', address, width, height, ...bandOf(i, parties, height), generations, parties)));
  await Promise.all(threads.map((thread) => thread.join()));
  const ms = performance.now() - started;
  const final = await parent.read(address + GRID + (generations % 2) * width * height, width * height);
  return { grid: final, ms };
}

export async function main({ nodes = availableParallelism(), width = 256, height = 256, generations = 100 } = {}) {
  const kernel = await Kernel.boot({ nodes });
  try {
    const prepared = await prepare(kernel, nodes, width, height);
    const start = seedGrid(width, height);
    const single = await simulate(prepared, 1, generations, start);
    const parallel = await simulate(prepared, nodes, generations, start);
    const equal = single.grid.length === parallel.grid.length && single.grid.every((cell, i) => cell === parallel.grid[i]);
    const alive = parallel.grid.reduce((sum, cell) => sum + cell, 0);
    console.log(`${width}×${height}, ${generations} generations: ${alive} alive; ` +
      `1 thread ${single.ms.toFixed(0)} ms, ${nodes} threads on ${nodes} nodes ${parallel.ms.toFixed(0)} ms; ` +
      `equal to the single-thread run: ${equal}`);
    return { nodes, alive, equal, singleMs: single.ms, parallelMs: parallel.ms };
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
