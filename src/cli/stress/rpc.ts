/**
 * The thread entries of the RPC scenarios (ping-pong mesh, teleport churn, chaos): a client
 * that RPCs the ports its PRNG picks, and a server that answers one port, checking each
 * sender's sequence numbers. Loaded by the nodes: it imports nothing from the host.
 */
import {
  MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_SEND_ONCE, MACH_NOTIFY_SEND_ONCE,
  MACH_PORT_RIGHT_RECEIVE, MACH_RCV_MSG, MACH_RCV_TIMED_OUT, MACH_RCV_TIMEOUT, MACH_SEND_INVALID_DEST, MACH_SEND_MSG,
} from '../../shared/constants.js';
import type { ThreadContext } from '../../shared/context.js';
import { krName } from '../../shared/errors.js';
import { Prng } from './prng.js';
import { body, CONTROL_BYTES, CTL, readBody, Recorder, REPLY_ID, REQUEST_ID, serviceName, STOP_ID, type ThreadReport } from './thread-kit.js';

/** How long a client waits for an answer before it counts its request lost. */
const LOST_AFTER_MS = 30_000;

/** A port a client may call: its index (its name is serviceName(index)) and the node serving it now. */
export interface Target { readonly index: number; readonly node: number }

/** Which node is down (CTL.DOWN), or -1. */
function downNode(ctl: Int32Array): number { return Atomics.load(ctl, CTL.DOWN) - 1; }

/**
 * A client: `iterations` RPCs (0: until told to stop), each to a target its PRNG picks, with a
 * reply port of its own. Answers, beside its report, how many replies it had from each port.
 * A target on a node that crashed (chaos) fails as Mach says it does and is not called again.
 */
export async function ask(context: ThreadContext, control: number, sender: number, targets: readonly Target[],
  iterations: number, seed: number): Promise<ThreadReport & { sent: number[] }> {
  const ctl = context.view(control, CONTROL_BYTES, Int32Array);
  const recorder = new Recorder(ctl);
  const prng = Prng.derive(seed, 1, sender);
  const sent = new Array<number>(Math.max(0, ...targets.map((t) => t.index)) + 1).fill(0);
  const down = new Set<number>();
  const { kr: allocated, name: reply } = await context.mach.mach_port_allocate(MACH_PORT_RIGHT_RECEIVE);
  if (allocated !== 0) recorder.violation('expected-returns', `client ${sender}: mach_port_allocate ${krName(allocated)}`);
  for (let i = 0; allocated === 0 && recorder.running(i, iterations); i++) {
    const target = targets[prng.below(targets.length)]!;
    if (down.has(target.index)) { recorder.count('skipped: port on the crashed node'); continue; }
    const seq = sent[target.index]!;
    const started = performance.now();
    const { kr, msg } = await context.mach.mach_msg({
      remotePort: serviceName(target.index), remoteDisposition: MACH_MSG_TYPE_COPY_SEND, localPort: reply,
      localDisposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, id: REQUEST_ID, body: body(sender, seq),
    }, MACH_SEND_MSG | MACH_RCV_MSG | MACH_RCV_TIMEOUT, 0, 0, reply, LOST_AFTER_MS);
    if (kr === 0 && msg!.id === REPLY_ID) {
      recorder.took('mach_msg rpc', started);
      recorder.op();
      sent[target.index] = seq + 1;
      recorder.checked();
      const answer = readBody(msg!.body);
      if (answer === undefined || answer.sender !== sender || answer.seq !== seq) {
        recorder.violation('no-duplicate', `client ${sender}: port ${target.index} answered ${JSON.stringify(answer)} to seq ${seq}`);
      }
      continue;
    }
    const outcome = kr !== 0 ? krName(kr) : msg!.id === MACH_NOTIFY_SEND_ONCE ? 'MACH_NOTIFY_SEND_ONCE' : `msgh_id ${msg!.id}`;
    // A server's node that died: the send finds the port dead, or the request queued there had
    // its reply right destroyed, which the survivors answer with a send-once notification.
    const crashed = target.node === downNode(ctl) &&
      (kr === MACH_SEND_INVALID_DEST || (kr === 0 && msg!.id === MACH_NOTIFY_SEND_ONCE));
    if (crashed) {
      down.add(target.index);
      recorder.count(`rpc to the crashed node: ${outcome}`);
    } else if (kr === MACH_RCV_TIMED_OUT) {
      recorder.violation('no-loss', `client ${sender}: no answer from port ${target.index} to seq ${seq} in ${LOST_AFTER_MS} ms`);
    } else {
      recorder.violation('expected-returns', `client ${sender}: rpc to port ${target.index} (node ${target.node}) answered ${outcome}`);
    }
  }
  if (allocated === 0) await context.mach.mach_port_mod_refs(reply, MACH_PORT_RIGHT_RECEIVE, -1);
  return { ...recorder.report(prng), sent };
}

/**
 * A server: answers requests on `port` until a STOP message. `received` (words per sender in
 * shared task memory at `state`, so they move with a teleported task) holds the next sequence
 * number each sender must send; answers them with its report.
 */
export async function serve(context: ThreadContext, control: number, index: number, port: number, state: number,
  senderNodes: readonly number[]): Promise<ThreadReport & { received: number[]; served: number }> {
  const ctl = context.view(control, CONTROL_BYTES, Int32Array);
  const recorder = new Recorder(ctl);
  const expected = context.view(state, senderNodes.length * 4, Int32Array);
  let served = 0;
  for (;;) {
    const { kr, msg } = await context.mach.mach_msg(null, MACH_RCV_MSG, 0, 0, port);
    if (kr !== 0) {
      recorder.violation('expected-returns', `port ${index}: receive answered ${krName(kr)}`);
      break;
    }
    if (msg!.id === STOP_ID) break;
    const request = readBody(msg!.body);
    if (request === undefined || request.sender >= senderNodes.length) {
      recorder.violation('expected-returns', `port ${index}: a malformed request (msgh_id ${msg!.id})`);
      continue;
    }
    const want = expected[request.sender]!;
    recorder.checked();
    if (request.seq < want) {
      recorder.violation('no-duplicate', `port ${index}: sender ${request.sender} seq ${request.seq} again (next expected ${want})`);
    } else {
      if (request.seq > want) {
        recorder.violation('per-sender-order', `port ${index}: sender ${request.sender} seq ${request.seq} before seq ${want}`);
      }
      expected[request.sender] = request.seq + 1;
    }
    const started = performance.now();
    const sent = await context.mach.mach_msg({
      remotePort: msg!.remotePort, remoteDisposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, id: REPLY_ID, body: body(request.sender, request.seq),
    }, MACH_SEND_MSG);
    served++;
    if (sent.kr === 0) recorder.took('mach_msg reply', started);
    else if (senderNodes[request.sender] === downNode(ctl)) recorder.count(`reply to the crashed node: ${krName(sent.kr)}`);
    else recorder.violation('expected-returns', `port ${index}: reply to sender ${request.sender} answered ${krName(sent.kr)}`);
  }
  return { ...recorder.report(new Prng(0)), received: Array.from(expected), served };
}
