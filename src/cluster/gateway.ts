/**
 * The per-process gateway: Mach 3's netmsgserver. Ports never leave their process; a right to a
 * port of another process is a right to a local proxy port whose receive right the gateway task
 * holds, and what arrives on a proxy is forwarded to the port's home process, whose gateway
 * sends it to the real port with the real right it keeps (its export). Rights inside forwarded
 * messages are translated to wire rights (wire.ts) and back; out-of-line memory crosses as bytes.
 *
 *   gateway-proxies.ts  the sending side: proxies, forwarding in order, credits, no-senders
 *   gateway-exports.ts  the home side: exports, grants, delivering, dead names
 *   gateway-core.ts     what both share, and the checks on frames from the link
 *   gateway-records.ts  the records both sides keep (a proxy, an export)
 *
 * One task (on local node 0) holds it all: a port set of every proxy and forwarder and the
 * notify port for dead-name notifications, served by one receive loop; an intake port where a
 * scratch task hands it rights given to exportRight, so they land in its space the way Mach
 * coalesces them (a send right joins the name of the gateway's send right to the same port).
 *
 * Across processes the queue limit holds by credits: a proxy forwards at most `window` messages
 * its home has not acknowledged (the home acknowledges once the real port took one), then
 * leaves the port set, so its own queue fills and senders block at its limit (MACH_SEND_TIMEOUT
 * works). A sender may thus get ahead of the real port by its queue, the window and the proxy's
 * queue. A receive right that crosses leaves its old port behind as a forwarder to the new one
 * (what is queued there and what comes later follows, in order). A process whose message
 * reaches a forwarder gets a location hint (NORMA's norma_port_location_hint), once: the
 * forwarder's home grants it a right to the port's export there, then it hears where. Its proxy
 * sends a fence down the old path (into the forwarder's port, behind what it sent, and on
 * through each forwarder), holds its further messages until the port's home reports the fence
 * arrived, then sends there directly and gives its rights at the old home back; its credits in
 * use carry over, acknowledged by whichever home took each message. A chain collapses one hint
 * at a time; a process's own forwarder and local senders of an old port still go through it. A
 * proxy switched away no longer depends on the old home; one switching when either home goes
 * down dies.
 * Requests registered on a migrated port stay with the old port. A receive right is exported
 * before the gateway holds it (under a token; taking it needs the gateway's node, which a task
 * may be holding), and its queue limit travels with it: the kernel reads it from the port table
 * (LocalKernel.queueLimit), else the gateway reads it once it holds the right. The rest of
 * MACH_PORT_RECEIVE_STATUS is not carried: the new port's seqno and make-send count start
 * afresh, its msgcount grows as the old queue is forwarded, and pd/ns requests stay behind.
 * Out-of-line memory sent with share: true crosses as a copy (a process cannot map another's
 * memory): mach_msg succeeds, and statistics().sharedOolCopied counts it. A forwarder closes
 * when its last send right goes, and send-once rights made for the old port before it moved
 * then die.
 * A send-once export has no dead-name request: its proxy learns of the death only by using it.
 * A grant for a third process that the granting process never delivered (it went down between
 * the two) stays counted until the third process goes down.
 */
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND,
  MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_MSG_TYPE_PORT_RECEIVE, MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE, MACH_PORT_DEAD, MACH_PORT_LIMITS_INFO, MACH_PORT_NULL, MACH_PORT_QLIMIT_DEFAULT,
  MACH_PORT_RIGHT_PORT_SET, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND, MACH_RCV_MSG, MACH_RCV_TIMEOUT, MACH_SEND_MSG,
} from '../shared/constants.js';
import { KernError } from '../shared/errors.js';
import type { RightInTransit } from '../shared/message.js';
import type { PortId } from '../shared/types.js';
import type { Task } from '../task.js';
import {
  ANY, DEAD, GatewayContext, isWireRight, parseFrame, parseRequest, queueLimitOf, taskCall, type TaskCall,
} from './gateway-core.js';
import { Exports } from './gateway-exports.js';
import { Proxies, type After } from './gateway-proxies.js';
import type { ClusterLink, LocalKernel, ProcessIndex } from './link.js';
import type { WireRight } from './wire.js';

export interface GatewayOptions {
  /** Messages a proxy forwards ahead of its home's acknowledgements. Default MACH_PORT_QLIMIT_DEFAULT. */
  readonly window?: number;
}

export interface GatewayStatistics {
  /** Proxies for send rights to ports of other processes. */
  readonly proxies: number;
  /** Old ports of receive rights that moved away, forwarding to their new home. */
  readonly forwarders: number;
  /** One-shot proxies for send-once rights, not yet used. */
  readonly oneShots: number;
  /** Send rights held for other processes (one per port). */
  readonly exports: number;
  /** Send rights those exports are granted to other processes for, not yet released. */
  readonly grants: number;
  readonly sendOnceExports: number;
  /** Receive rights on their way to another process that has not said where they went yet. */
  readonly pendingReceives: number;
  /** Messages sent on to a home process, and messages delivered here to a real port. */
  readonly forwarded: number;
  readonly delivered: number;
  /**
   * Out-of-line regions sent with share: true that crossed to another process as a copy: a
   * process cannot map another's memory, so sharing stops at the process boundary (counted,
   * never silent; mach_msg still succeeds).
   */
  readonly sharedOolCopied: number;
  /** Forwarded messages the home has not acknowledged yet. */
  readonly acksOutstanding: number;
  /** Location hints this process followed: a proxy that sent through a forwarder now sends to the port's new home. */
  readonly hintsFollowed: number;
  /** Frames refused, messages that could not be delivered, and other drops, by reason. */
  readonly dropped: Readonly<Record<string, number>>;
  /** The receive loop's end code, once it ended (KERN_SUCCESS after stop()). */
  readonly loopEnded?: number;
  readonly lastError?: string;
}

/** The names the scratch task uses: its send right to the intake port, and where a right waits to go in. */
const INTAKE_SEND = 0x20001;
const INTAKE_SLOT = 0x20101;
/** How long (ms) the gateway waits for a right it just sent itself. */
const INTAKE_TIMEOUT = 10_000;

const DISPOSITION: Readonly<Record<'send' | 'send-once' | 'receive', number>> = {
  'send': MACH_MSG_TYPE_MOVE_SEND, 'send-once': MACH_MSG_TYPE_MOVE_SEND_ONCE, 'receive': MACH_MSG_TYPE_MOVE_RECEIVE,
};

export class Gateway {
  readonly #here: GatewayContext;
  readonly #task: Task;
  readonly #scratch: Task;
  readonly #scratchCall: TaskCall;
  readonly #intake: number;
  readonly #exports: Exports;
  readonly #proxies: Proxies;
  /** A port's queue limit read from this process's port table, without a node (kernel.ts; absent: asked of the gateway's node). */
  readonly #queueLimit: ((port: PortId) => number | undefined) | undefined;
  #intakeTail: Promise<unknown> = Promise.resolve();
  #loop: Promise<void> = Promise.resolve();
  #loopEnded: number | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(here: GatewayContext, task: Task, scratch: Task, scratchCall: TaskCall, intake: number,
    queueLimit: ((port: PortId) => number | undefined) | undefined) {
    this.#here = here;
    this.#queueLimit = queueLimit;
    this.#task = task;
    this.#scratch = scratch;
    this.#scratchCall = scratchCall;
    this.#intake = intake;
    this.#exports = new Exports(here);
    this.#proxies = new Proxies(here, (name, type, dest, after) => this.#toWire(name, type, dest, after));
    this.#exports.proxies = this.#proxies;
  }

  /** Starts the gateway of this process: its task, ports and receive loop, and the link's 'gateway' service. */
  static async start(kernel: LocalKernel, link: ClusterLink, options: GatewayOptions = {}): Promise<Gateway> {
    const window = options.window ?? MACH_PORT_QLIMIT_DEFAULT;
    if (!Number.isInteger(window) || window < 1) throw new RangeError('options.window must be a positive integer');
    const task = await kernel.bootstrapTask.create();
    const scratch = await kernel.bootstrapTask.create();
    const g = taskCall(kernel, task.node, task.id);
    const x = taskCall(kernel, scratch.node, scratch.id);
    const set = await allocate(g, MACH_PORT_RIGHT_PORT_SET);
    const notify = await allocate(g, MACH_PORT_RIGHT_RECEIVE);
    await g('portMoveMember', notify, set);
    const intake = await allocate(g, MACH_PORT_RIGHT_RECEIVE);
    const send = await g('portExtractRight', intake, MACH_MSG_TYPE_MAKE_SEND);
    await x('portInsertRight', INTAKE_SEND, send.right!, MACH_MSG_TYPE_MOVE_SEND);
    const queueLimit = (kernel as Partial<{ queueLimit(port: PortId): number | undefined }>).queueLimit?.bind(kernel);
    const gateway = new Gateway(new GatewayContext(link, g, set, notify, window), task, scratch, x, intake, queueLimit);
    link.serve('gateway', {
      message: (from, payload) => gateway.#message(from, payload),
      request: (from, payload) => gateway.#request(from, payload),
    });
    link.onPeerDown((proc) => gateway.#peerDown(proc));
    gateway.#loop = gateway.#run();
    return gateway;
  }

  /**
   * Makes a right held in this process (a right in transit, which this call consumes) a wire
   * right another process can import; the gateway keeps the real right meanwhile. `to` names
   * the process it is for; without it, the first process to use it claims it.
   */
  async exportRight(right: RightInTransit, to: ProcessIndex = ANY): Promise<WireRight> {
    if (right.kind === 'dead') return DEAD;
    if (right.kind === 'receive') return this.#exportReceive(right, to);
    const type = right.kind === 'send' ? MACH_MSG_TYPE_PORT_SEND : MACH_MSG_TYPE_PORT_SEND_ONCE;
    const name = await this.#take(right);
    if (name === null) return DEAD;
    const after: After = [];
    const wire = await this.#toWire(name, type, to, after);
    // The caller posts the wire right next (in this turn). What the gateway drops with it waits
    // a turn, so a release that the drop sets off is posted after the right (and the right's
    // home holds that release until the right is imported: holdReleases).
    if (after.length > 0) {
      setImmediate(() => void this.#here.guard((async () => { for (const step of after) await step(); })()));
    }
    return wire;
  }

  /**
   * A right valid in this process for `wire`: a proxy's send or send-once right, the real right
   * of a port of this process, a new port's receive right (the old one forwarding to it), or a
   * dead right. Ready for portInsertRight.
   */
  async importRight(wire: WireRight): Promise<RightInTransit> {
    const { g, link } = this.#here;
    if (!isWireRight(wire, link.processes) || wire.kind === 'dead') return { kind: 'dead' };
    if (wire.home === this.#here.self) return this.#exports.importHome(wire);
    const extract = async (name: number, type: number): Promise<RightInTransit> =>
      (await g('portExtractRight', name, type)).right ?? { kind: 'dead' };
    let right: RightInTransit | null;
    if (wire.kind === 'send') {
      right = await this.#proxies.acquire(wire.home, wire.export, (name) => extract(name, MACH_MSG_TYPE_MAKE_SEND));
    } else if (wire.kind === 'send-once') {
      right = await this.#proxies.oneShot(wire.home, wire.export, (name) => extract(name, MACH_MSG_TYPE_MAKE_SEND_ONCE));
    } else {
      right = link.isDown(wire.home) ? null
        : await extract(await this.#exports.adopt(wire.home, wire.export, queueLimitOf(wire)), MACH_MSG_TYPE_MOVE_RECEIVE);
    }
    return right ?? { kind: 'dead' };
  }

  statistics(): GatewayStatistics {
    const here = this.#here;
    return {
      ...this.#proxies.statistics(), ...this.#exports.statistics(),
      forwarded: here.forwarded, delivered: here.delivered, sharedOolCopied: here.sharedOolCopied, dropped: Object.fromEntries(here.dropped),
      ...(this.#loopEnded === undefined ? {} : { loopEnded: this.#loopEnded }),
      ...(here.lastError === undefined ? {} : { lastError: here.lastError }),
    };
  }

  /** @internal For tests: how many names the gateway task's space holds (4 when it holds nothing for anyone). */
  async names(): Promise<number> {
    return (await this.#here.g('portNames')).names.length;
  }

  /**
   * Stops the gateway: its task goes, and with it every right it held: proxies die (local names
   * turn dead), exported send rights are released (no-senders where they were the last).
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#here.stopped = true;
      await this.#task.terminate().catch(() => {});
      await this.#scratch.terminate().catch(() => {});
      await this.#loop;
    })();
    return this.#stopping;
  }

  async #run(): Promise<void> {
    const here = this.#here;
    for (;;) {
      const reply = await here.g('machMsg', null, MACH_RCV_MSG, here.set, 0, 0);
      if (here.stopped) {
        this.#loopEnded = KERN_SUCCESS;
        return;
      }
      if (reply.kr !== MACH_MSG_SUCCESS || reply.msg === undefined) {
        this.#loopEnded = reply.kr;
        return;
      }
      if (reply.msg.localPort === here.notify) this.#exports.notified(reply.msg);
      else await here.guard(this.#proxies.received(reply.msg));
    }
  }

  /**
   * A right the gateway received under `name` (type MACH_MSG_TYPE_PORT_*), as a wire right for
   * `dest`: a send right to a proxy is the proxy's own wire right; any other right of this
   * process is exported.
   */
  async #toWire(name: number, type: number, dest: ProcessIndex, after: After): Promise<WireRight> {
    const { g, link } = this.#here;
    if (name === MACH_PORT_NULL || name === MACH_PORT_DEAD) return DEAD;
    if (dest !== ANY && link.isDown(dest)) {
      // Nobody will take it: destroyed, as Mach destroys the rights of a message it cannot deliver.
      if (type === MACH_MSG_TYPE_PORT_RECEIVE) await g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1);
      else if (type === MACH_MSG_TYPE_PORT_SEND_ONCE) await g('portDeallocate', name);
      else await g('portModRefs', name, MACH_PORT_RIGHT_SEND, -1);
      return DEAD;
    }
    if (type === MACH_MSG_TYPE_PORT_RECEIVE) return this.#exports.exportReceive(Promise.resolve(name), dest, await this.#limitOf(name));
    if (type === MACH_MSG_TYPE_PORT_SEND_ONCE) return this.#exports.exportSendOnce(name, dest);
    const proxy = this.#proxies.get(name);
    return proxy === undefined ? this.#exports.exportSend(name, dest) : this.#proxies.passOn(proxy, dest, after);
  }

  /**
   * A receive right is exported before the gateway holds it: taking it needs the gateway's node,
   * which may be busy (a task there computing) while the right's new home needs it now. Its queue
   * limit comes from the port table when the kernel offers that, else from the right once taken.
   */
  async #exportReceive(right: Exclude<RightInTransit, { kind: 'dead' }>, to: ProcessIndex): Promise<WireRight> {
    const here = this.#here;
    const taken = this.#take(right).catch((error: unknown) => here.guard(Promise.reject(error)).then(() => null));
    if (to !== ANY && here.link.isDown(to)) {
      // Nobody will take it: destroyed, as Mach destroys the rights of a message it cannot deliver.
      void here.guard(taken.then((name) => name === null ? undefined : here.g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1)));
      return DEAD;
    }
    let qlimit = this.#queueLimit?.(right.portId);
    if (qlimit === undefined) {
      const name = await taken;
      if (name === null) return DEAD;
      qlimit = await this.#limitOf(name);
    }
    return this.#exports.exportReceive(taken, to, qlimit);
  }

  /** The queue limit of the receive right the gateway holds under `name`. */
  async #limitOf(name: number): Promise<number> {
    const { info } = await this.#here.g('portGetAttributes', name, MACH_PORT_LIMITS_INFO);
    return (info as { queue_limit?: number } | undefined)?.queue_limit ?? MACH_PORT_QLIMIT_DEFAULT;
  }

  /**
   * Puts `right` into the gateway's space through a message from the scratch task to the intake
   * port, so it lands where Mach puts it (a send right under the name of the gateway's send
   * right to that port, if it has one). One at a time. Null when its port died.
   */
  #take(right: Exclude<RightInTransit, { kind: 'dead' }>): Promise<number | null> {
    const taken = this.#intakeTail.then(async () => {
      const x = this.#scratchCall;
      const disposition = DISPOSITION[right.kind];
      if ((await x('portInsertRight', INTAKE_SLOT, right, disposition)).kr !== KERN_SUCCESS) return null;
      const message = { remotePort: INTAKE_SEND, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, ports: [{ name: INTAKE_SLOT, disposition }] };
      if ((await x('machMsg', message, MACH_SEND_MSG, MACH_PORT_NULL, 0)).kr !== MACH_MSG_SUCCESS) {
        await x('portDestroy', INTAKE_SLOT);
        return null;
      }
      const got = await this.#here.g('machMsg', null, MACH_RCV_MSG | MACH_RCV_TIMEOUT, this.#intake, INTAKE_TIMEOUT, 0);
      const name = got.msg?.ports[0]?.name ?? MACH_PORT_NULL;
      if (got.kr !== MACH_MSG_SUCCESS) throw new KernError(got.kr, 'gateway: intake');
      return name === MACH_PORT_NULL || name === MACH_PORT_DEAD ? null : name;
    });
    this.#intakeTail = taken.catch(() => {});
    return taken;
  }

  /**
   * Rights from `from` are being imported here (a call's arguments, a reply's right) until the
   * returned function runs: a release from `from` meanwhile waits, for a right it handed back to
   * its home must be taken before that release can drop the export (the release is posted after
   * the right, but handled at once while the import awaits). Idempotent end.
   */
  holdReleases(from: ProcessIndex): () => void {
    const hold = this.#importing.get(from) ?? { count: 0, waiting: [] };
    hold.count++;
    this.#importing.set(from, hold);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      if (--hold.count > 0) return;
      this.#importing.delete(from);
      for (const run of hold.waiting) run();
    };
  }

  readonly #importing = new Map<ProcessIndex, { count: number; readonly waiting: Array<() => void> }>();

  #afterImports(from: ProcessIndex, run: () => void): void {
    const hold = this.#importing.get(from);
    if (hold === undefined) run();
    else hold.waiting.push(run);
  }

  #message(from: ProcessIndex, payload: unknown): void {
    const here = this.#here;
    if (here.stopped) return;
    const frame = here.isPeer(from) ? parseFrame(payload, here.link.processes) : null;
    if (frame === null) return here.drop('malformed');
    switch (frame.op) {
      case 'deliver': return this.#exports.deliver(from, frame);
      case 'ack': return this.#proxies.acked(from, frame.export, frame.count);
      case 'release': return this.#afterImports(from, () => this.#exports.release(from, frame.export, frame.count, frame.kind));
      case 'dead': return this.#proxies.dead(from, frame.export);
      case 'migrated': return this.#exports.migrated(from, frame.export, frame.to);
      case 'moved': return this.#proxies.moved(from, frame.export, frame.home, frame.to);
      case 'fence': return this.#exports.fence(from, frame.export, frame.for, frame.seq);
      case 'fenced': return this.#proxies.fenced(frame.seq);
    }
  }

  async #request(from: ProcessIndex, payload: unknown): Promise<{ kr: number }> {
    const here = this.#here;
    const request = here.stopped || !here.isPeer(from) ? null : parseRequest(payload);
    if (request === null) {
      here.drop('malformed');
      return { kr: KERN_INVALID_ARGUMENT };
    }
    return this.#exports.grant(from, request.export, request.to);
  }

  #peerDown(proc: ProcessIndex): void {
    if (this.#here.stopped) return;
    this.#proxies.homeDown(proc);
    this.#exports.peerDown(proc);
  }
}

async function allocate(g: TaskCall, right: number): Promise<number> {
  const { kr, name } = await g('portAllocate', right);
  if (kr !== KERN_SUCCESS) throw new KernError(kr, 'gateway: port');
  return name;
}
