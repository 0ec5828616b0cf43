// A server on every node in front of one worker task that moves between nodes under load.
//   node examples/teleport-server.mjs      (after npm install)
// The server task (node 0) is cloned onto every node; each replica runs a front thread that
// forwards requests from its node's clients to the worker's port, handing on the client's reply
// right, and the worker answers the client directly. Meanwhile the worker task is teleported
// from node to node while the clients keep sending. A teleport moves memory, not the port space
// (seed 001), so each move takes the worker's receive right out first and puts it into the moved
// task: the port, its queue and every send right to it stay as they were, so no request is lost.
// The clients count requests and replies; the worker counts what it served in each place.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  Kernel, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_PORT_RIGHT_RECEIVE, MACH_RCV_MSG,
  MACH_RCV_TIMED_OUT, MACH_RCV_TIMEOUT, MACH_SEND_MSG, VM_INHERIT_SHARE,
} from 'norma-rt';

/** Names the host gives, in the replicas and clients, the rights it inserts. */
const WORKER = 0x1303;
const FRONT = 0x1403;
/** msgh_ids: a request, and the message that ends a front or worker thread. */
const REQUEST = 500;
const STOP = 599;
/** Shared words: [0] clients stop when set; [1] requests served, over every place the worker was. */
const STOP_FLAG = 0;
const SERVED = 1;

async function send(context, message, who) {
  const { kr } = await context.mach.mach_msg(message, MACH_SEND_MSG);
  if (kr !== 0) throw new Error(`${who}: send kr ${kr}`);
}

/** A replica's front thread: forwards each request to the worker with its reply right, until STOP. */
export async function front(context, port) {
  for (let forwarded = 0; ; forwarded++) {
    const { kr, msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, port);
    if (kr !== 0) throw new Error(`front on node ${context.node}: receive kr ${kr}`);
    if (msg.id === STOP) return forwarded;
    await send(context, {
      remotePort: WORKER, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, localPort: msg.remotePort,
      localDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: REQUEST, body: msg.body,
    }, 'front');
  }
}

/** The worker's thread: answers requests (the number, doubled) until STOP; counts them. */
export async function work(context, port, address) {
  const served = context.view(address, 8, Int32Array);
  for (let count = 0; ; count++) {
    const { kr, msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, port);
    if (kr !== 0) throw new Error(`worker on node ${context.node}: receive kr ${kr}`);
    if (msg.id === STOP) return count;
    const n = new DataView(msg.body.buffer, msg.body.byteOffset).getUint32(0);
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, 2 * n);
    await send(context, { remotePort: msg.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: REQUEST + 100, body }, 'worker');
    Atomics.add(served, SERVED, 1);
    Atomics.notify(served, SERVED);
  }
}

/** How long a client waits for an answer before it counts its request as lost. */
const LOST_AFTER_MS = 10_000;

/** A client thread: RPCs to its node's front until the host raises the stop flag; checks each answer. */
export async function ask(context, address) {
  const flag = context.view(address, 8, Int32Array);
  const { name: reply } = await context.mach.mach_port_allocate(MACH_PORT_RIGHT_RECEIVE);
  let sent = 0;
  let replies = 0;
  while (Atomics.load(flag, STOP_FLAG) === 0) {
    const body = new Uint8Array(4);
    new DataView(body.buffer).setUint32(0, sent);
    sent++;
    const { kr, msg } = await context.mach.mach_msg({
      remotePort: FRONT, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, localPort: reply,
      localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, id: REQUEST, body,
    }, MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, reply, LOST_AFTER_MS);
    if (kr === MACH_RCV_TIMED_OUT) break;                               // lost: the counts show it
    if (kr !== 0) throw new Error(`client on node ${context.node}: kr ${kr}`);
    if (new DataView(msg.body.buffer, msg.body.byteOffset).getUint32(0) !== 2 * (sent - 1)) {
      throw new Error(`client on node ${context.node}: a wrong answer`);
    }
    replies++;
  }
  return { sent, replies };
}

/** A send right to `name` in `from`, inserted into `to` as `as`. */
async function giveSend(from, name, to, as) {
  const right = await from.extractRight(name, MACH_MSG_TYPE_MAKE_SEND);
  await to.insertRight(as, right, right.type);
}

/** Resolves once the shared served count exceeds `count` (Atomics.waitAsync: no polling). */
async function servedPast(words, count) {
  for (let now = Atomics.load(words, SERVED); now <= count; now = Atomics.load(words, SERVED)) {
    await Atomics.waitAsync(words, SERVED, now).value;
  }
}

export async function main({ nodes = Math.max(2, availableParallelism()), moves = 4, perMove = 50 } = {}) {
  const kernel = await Kernel.boot({ nodes });
  try {
    const server = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const address = await server.allocate(kernel.pageSize);
    await server.inherit(address, kernel.pageSize, VM_INHERIT_SHARE);
    const replicas = [server, ...await Promise.all(Array.from({ length: nodes - 1 }, (_, i) => server.clone(i + 1)))];
    let worker = await server.createOn(0);                             // shares the page
    const clients = await Promise.all(replicas.map((_, node) => server.createOn(node)));
    const shared = await server.view(address, 8);
    const words = new Int32Array(shared.buffer, shared.byteOffset, 2);

    const port = await worker.allocatePort();
    const fronts = [];
    for (const [node, replica] of replicas.entries()) {
      fronts.push(await replica.allocatePort());
      await giveSend(worker, port, replica, WORKER);
      await giveSend(replica, fronts[node], clients[node], FRONT);
    }
    const here = import.meta.url;
    const frontThreads = await Promise.all(replicas.map((replica, node) => replica.spawn(here, 'front', fronts[node])));
    const clientThreads = await Promise.all(clients.map((client) => client.spawn(here, 'ask', address)));
    let thread = await worker.spawn(here, 'work', port, address);

    const places = [];
    for (let move = 1; move <= moves; move++) {
      await servedPast(words, move * perMove);
      // Stop the worker's thread between two requests (STOP queues behind those already sent),
      // take the receive right out, move the task, and give the right to the moved task.
      await worker.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: STOP });
      places.push({ node: worker.node, served: await thread.join() });
      const right = await worker.extractRight(port, MACH_MSG_TYPE_MOVE_RECEIVE);
      worker = await worker.teleport((worker.node + 1) % nodes);
      await worker.insertRight(port, right, right.type);
      thread = await worker.spawn(here, 'work', port, address);
    }
    await servedPast(words, (moves + 1) * perMove);

    Atomics.store(words, STOP_FLAG, 1);
    const asked = await Promise.all(clientThreads.map((client) => client.join()));
    for (const [node, replica] of replicas.entries()) {
      await replica.send({ remotePort: fronts[node], remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: STOP });
    }
    const forwarded = (await Promise.all(frontThreads.map((front) => front.join()))).reduce((a, b) => a + b, 0);
    await worker.send({ remotePort: port, remoteDisposition: MACH_MSG_TYPE_MAKE_SEND, id: STOP });
    places.push({ node: worker.node, served: await thread.join() });

    const requests = asked.reduce((sum, { sent }) => sum + sent, 0);
    const replies = asked.reduce((sum, { replies: n }) => sum + n, 0);
    const served = places.reduce((sum, place) => sum + place.served, 0);
    console.log(`${requests} requests from ${nodes} clients, ${replies} replies (${forwarded} forwarded, ${served} served); ` +
      `worker served ${places.map((p) => `${p.served} on node ${p.node}`).join(', then ')}; ` +
      `lost: ${requests - replies}`);
    return { requests, replies, forwarded, served, places };
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
