// An exception handler on node 1 catches a thread's error on node 0 and restarts it.
//   node examples/exception.mjs      (after npm install)
// The worker's first attempt throws. The kernel turns the uncaught error into an exception_raise
// message (msgh_id 2401: EXC_SOFTWARE, the error's name, message and stack, send rights to the
// thread and its task, a send-once reply right) for the task's exception port, whose receive
// right the handler task on node 1 holds. The handler reads the error, gives the thread a new
// state with thread_set_state and answers KERN_SUCCESS as MIG would: the thread runs again.
import { fileURLToPath } from 'node:url';
import {
  decodeExceptionRaise, EXC_MASK_SOFTWARE, EXCEPTION_DEFAULT, exceptionReply, Kernel, KERN_SUCCESS,
  MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_RCV_MSG, MACH_SEND_MSG,
  NORMA_THREAD_STATE_JS,
} from 'norma-rt';

/** The worker: sums 1..n into its task's memory; fails while `divisor` is 0. */
export async function work(context, address, n, divisor) {
  if (divisor === 0) throw new RangeError(`cannot split ${n} by ${divisor}`);
  const out = context.view(address, 8, Float64Array);
  out[0] = (n * (n + 1)) / 2 / divisor;
  return { node: context.node, result: out[0] };
}

/** The handler thread: one exception, answered with a fixed state. */
export async function handle(context, port) {
  const { kr, msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, port);
  if (kr !== KERN_SUCCESS) throw new Error(`receive failed: ${kr}`);
  const { exception, code, error } = decodeExceptionRaise(msg.body);
  const [thread] = msg.ports;                                        // send rights to the thread and its task
  const { old_state: state } = await context.mach.thread_get_state(thread.name, NORMA_THREAD_STATE_JS);
  const [address, n] = state.args;
  const fixed = { ...state, args: [address, n, 1] };
  const setKr = await context.mach.thread_set_state(thread.name, NORMA_THREAD_STATE_JS, fixed);
  const reply = exceptionReply(msg.id, setKr);                       // KERN_SUCCESS resumes it
  await context.mach.mach_msg({ remotePort: msg.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, ...reply }, MACH_SEND_MSG);
  return { node: context.node, id: msg.id, exception, code, error: `${error.name}: ${error.message}` };
}

export async function main() {
  const kernel = await Kernel.boot({ nodes: 2 });
  try {
    const worker = await kernel.bootstrapTask.createOn(0);
    const handler = await kernel.bootstrapTask.createOn(1);
    const port = await handler.allocatePort();
    // A send right to the handler's port, named in the worker task (exception port names are the target's).
    const IN_WORKER = 0x1001;
    await worker.insertRight(IN_WORKER, await handler.extractRight(port, MACH_MSG_TYPE_MAKE_SEND), MACH_MSG_TYPE_MOVE_SEND);
    await worker.setExceptionPorts(EXC_MASK_SOFTWARE, IN_WORKER, EXCEPTION_DEFAULT);
    const address = await worker.allocate(kernel.pageSize);
    const handled = (await handler.spawn(import.meta.url, 'handle', port)).join();
    const thread = await worker.spawn(import.meta.url, 'work', address, 100, 0);
    const result = await thread.join();
    const caught = await handled;
    console.log(`node ${caught.node} caught exception ${caught.exception} (code 0x${caught.code[0].toString(16)}, ` +
      `msgh_id ${caught.id}) "${caught.error}" from node ${result.node}; restarted, the thread returned ${result.result}`);
    return { caught, result };
  } finally {
    await kernel.shutdown();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
