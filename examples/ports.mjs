// A client/server pair on two nodes exchanging a reply right.
//   node examples/ports.mjs      (after npm install)
// The host sets up the tasks and the one send right; everything else is tasks talking.
import { fileURLToPath } from 'node:url';
import {
  Kernel, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE,
  MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_PORT_RIGHT_RECEIVE, MACH_RCV_MSG, MACH_SEND_MSG,
} from 'norma-rt';

/** Runs in the server task (node 1): answers `count` requests, each on the reply right it carries. */
export async function serve(context, service, count) {
  for (let i = 0; i < count; i++) {
    const { msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, service);
    const text = new TextDecoder().decode(msg.body);
    await context.mach.mach_msg({
      remotePort: msg.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: msg.id + 100,
      body: new TextEncoder().encode(`node ${context.node} says: ${text.toUpperCase()}`),
    }, MACH_SEND_MSG);
  }
}

/** Runs in the client task (node 0): one request per word, a fresh reply port each time. */
export async function ask(context, service, words) {
  const answers = [];
  for (const word of words) {
    const { name: reply } = await context.mach.mach_port_allocate(MACH_PORT_RIGHT_RECEIVE);
    const { kr, msg } = await context.mach.mach_msg({
      remotePort: service, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, localPort: reply,
      localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, id: 1, body: new TextEncoder().encode(word),
    }, MACH_SEND_MSG | MACH_RCV_MSG, 0, 0, reply);
    answers.push(kr === 0 ? new TextDecoder().decode(msg.body) : `kr ${kr}`);
    await context.mach.mach_port_destroy(reply);
  }
  return answers;
}

export async function main() {
  const kernel = await Kernel.boot({ nodes: 2 });
  try {
    const server = await kernel.bootstrapTask.createOn(1, { inheritMemory: false });
    const client = await kernel.bootstrapTask.createOn(0, { inheritMemory: false });
    const service = await server.allocatePort();                          // receive right, node 1
    const send = await server.extractRight(service, MACH_MSG_TYPE_MAKE_SEND);
    await client.insertRight(0x1103, send, send.type);                    // the client's send right
    const words = ['hello', 'mach'];
    const here = import.meta.url;
    const [, answers] = await Promise.all([
      server.execute(here, 'serve', service, words.length),
      client.execute(here, 'ask', 0x1103, words),
    ]);
    for (const answer of answers) console.log(answer);
    return answers;
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
