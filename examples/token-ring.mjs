// A ring of tasks, one per node, passing a token by mach_msg.
//   node examples/token-ring.mjs      (after npm install)
// Each task holds the receive right of its own inbox and a send right to the next task's inbox
// (the host sets these up with extractRight / insertRight, as examples/ports.mjs does). A thread
// in each task receives the token and sends it on, `laps` times round the ring; the token carries
// its hop count, which every task checks. Task 0 times the whole run: time per hop.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Kernel, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_RCV_MSG, MACH_SEND_MSG } from 'norma-rt';

/** The name the host gives, in every task, the send right to the next task's inbox. */
const NEXT = 0x1203;

async function pass(context, index, hop) {
  const body = new Uint8Array(4);
  new DataView(body.buffer).setUint32(0, hop);
  const { kr } = await context.mach.mach_msg({ remotePort: NEXT, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: 7, body }, MACH_SEND_MSG);
  if (kr !== 0) throw new Error(`relay ${index}: send kr ${kr}`);
}

/**
 * A thread's entry: position `index` of a ring of `size`. Receives the token `laps` times and
 * passes it on (index 0 sends it first and keeps it at the end); answers ms per hop (index 0).
 */
export async function relay(context, inbox, index, size, laps) {
  const started = performance.now();
  if (index === 0) await pass(context, index, 0);
  for (let lap = 0; lap < laps; lap++) {
    const { kr, msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, inbox);
    if (kr !== 0) throw new Error(`relay ${index}: receive kr ${kr}`);
    const hop = new DataView(msg.body.buffer, msg.body.byteOffset).getUint32(0) + 1;
    if (hop !== lap * size + (index === 0 ? size : index)) throw new Error(`relay ${index}: token at hop ${hop} in lap ${lap}`);
    if (index !== 0 || lap < laps - 1) await pass(context, index, hop);
  }
  return (performance.now() - started) / (laps * size);
}

/** One task per node, each with an inbox and a send right to the next one's under NEXT. */
export async function ring(kernel, size) {
  const tasks = await Promise.all(Array.from({ length: size }, (_, node) =>
    kernel.bootstrapTask.createOn(node % kernel.nodes, { inheritMemory: false })));
  const inboxes = await Promise.all(tasks.map((task) => task.allocatePort()));
  for (let i = 0; i < size; i++) {
    const next = (i + 1) % size;
    const send = await tasks[next].extractRight(inboxes[next], MACH_MSG_TYPE_MAKE_SEND);
    await tasks[i].insertRight(NEXT, send, send.type);
  }
  return { tasks, inboxes };
}

/** `laps` laps of the token round `ring`'s tasks: ms per hop, as task 0 timed it. */
export async function runRing({ tasks, inboxes }, laps) {
  const threads = await Promise.all(tasks.map((task, i) =>
    task.spawn(import.meta.url, 'relay', inboxes[i], i, tasks.length, laps)));
  const [perHop] = await Promise.all(threads.map((thread) => thread.join()));
  return perHop;
}

export async function main({ nodes = Math.max(2, availableParallelism()), laps = 1000 } = {}) {
  const kernel = await Kernel.boot({ nodes });
  try {
    const tasks = await ring(kernel, nodes);
    const perHopMs = await runRing(tasks, laps);
    console.log(`ring of ${nodes} tasks on ${nodes} nodes, ${laps} laps (${laps * nodes} hops): ` +
      `${(perHopMs * 1000).toFixed(1)} µs per hop`);
    return { nodes, hops: laps * nodes, perHopMs };
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
