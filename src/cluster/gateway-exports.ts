/**
 * The gateway's home side: exports. The gateway holds the real right under its own name, the
 * export: send rights coalesce in one name per port. The rights granted to other processes and
 * not yet released are counted here, per process (so a process that goes down gives back
 * exactly its own), and so are the messages about to send a copy of it; while either count is
 * above zero the gateway keeps the right (its urefs stay bounded: the extra ones each received
 * right brings are dropped in batches). Send-once and receive rights are exported one name
 * each, for one process.
 *
 * A deliver from another process is checked whole before anything is done (the export must be
 * one granted to that process; every right it carries must be one it may pass: a port id
 * learned from traffic is not a send right), then its rights and memory are made in the
 * gateway's space and it is sent to the real port, one message at a time per export (so each
 * sender's order holds), and acknowledged: the acknowledgement is the sender's credit back.
 */
import {
  KERN_INVALID_RIGHT, KERN_SUCCESS, MACH_MSG_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND,
  MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_MOVE_RECEIVE, MACH_MSG_TYPE_MOVE_SEND, MACH_MSG_TYPE_MOVE_SEND_ONCE,
  MACH_NOTIFY_DEAD_NAME, MACH_PORT_LIMITS_INFO, MACH_PORT_NULL, MACH_PORT_RIGHT_DEAD_NAME, MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND,
  MACH_SEND_MSG,
} from '../shared/constants.js';
import type { MachMsgReceived, MachMsgSend, OolDescriptor, RightInTransit } from '../shared/message.js';
import { ANY, bodyWord, FENCE_ID, queueLimitOf, type GatewayContext, type ReceiveWire } from './gateway-core.js';
import type { Proxies } from './gateway-proxies.js';
import { newSendExport, type Grant, type ReceiveGrant, type SendExport } from './gateway-records.js';
import type { ProcessIndex } from './link.js';
import type { GatewayFrame, WireRight } from './wire.js';

/** Extra urefs are dropped once this many came in, far below MACH_PORT_UREFS_MAX. */
const EXTRA_UREFS_FLUSH = 1024;

type Deliver = Extract<GatewayFrame, { op: 'deliver' }>;

/** A right of a deliver as claimed on arrival, before anything else can touch it. */
type Claimed = { readonly pinned: SendExport } | { readonly once: number } | { readonly wire: WireRight };

/** A right made in the gateway's space for one message, and what undoes it when the send fails. */
interface Prepared { readonly name: number; readonly disposition: number; sent?(): void; undo(): Promise<unknown> }

export class Exports {
  readonly #here: GatewayContext;
  #proxies!: Proxies;
  readonly #send = new Map<number, SendExport>();
  readonly #once = new Map<number, Grant>();
  readonly #receive = new Map<number, ReceiveGrant>();
  #tokens = 0;

  constructor(here: GatewayContext) {
    this.#here = here;
  }

  set proxies(proxies: Proxies) { this.#proxies = proxies; }

  /** A send right the gateway received under `name`, granted to `to`. */
  exportSend(name: number, to: ProcessIndex): WireRight {
    let record = this.#send.get(name);
    if (record === undefined) {
      record = this.#record(name);
      void this.#here.guard(this.#armDeadName(name));
    } else if (++record.extra >= EXTRA_UREFS_FLUSH) {
      void this.#here.guard(this.#here.g('portModRefs', name, MACH_PORT_RIGHT_SEND, -record.extra));
      record.extra = 0;
    }
    this.#add(record, to, 1);
    return { kind: 'send', home: this.#here.self, export: name };
  }

  exportSendOnce(name: number, to: ProcessIndex): WireRight {
    this.#once.set(name, { name, grantee: to });
    return { kind: 'send-once', home: this.#here.self, export: name };
  }

  /**
   * A receive right, once the gateway holds it under `name`: it stays here, out of the port set,
   * until its new home says where it went. Its queue limit travels with the wire right.
   */
  exportReceive(name: Promise<number | null>, to: ProcessIndex, qlimit: number): ReceiveWire {
    const token = this.#tokens = this.#tokens % 0x7fffffff + 1;
    this.#receive.set(token, { grantee: to, name, qlimit });
    return { kind: 'receive', home: this.#here.self, export: token, qlimit };
  }

  /** A wire right of this process coming home: the right itself again (an unclaimed one is used up). */
  async importHome(wire: Exclude<WireRight, { kind: 'dead' }>): Promise<RightInTransit> {
    const { g } = this.#here;
    if (wire.kind === 'send') {
      const record = this.#send.get(wire.export);
      if (record === undefined) return { kind: 'dead' };
      // The copy is made before an unclaimed grant it uses up lets the export go.
      const extracted = g('portExtractRight', wire.export, MACH_MSG_TYPE_COPY_SEND);
      if ((record.held.get(ANY) ?? 0) > 0) this.#take(record, ANY, 1);
      return (await extracted).right ?? { kind: 'dead' };
    }
    if (wire.kind === 'send-once') {
      if (!this.#once.delete(wire.export)) return { kind: 'dead' };
      return (await g('portExtractRight', wire.export, MACH_MSG_TYPE_MOVE_SEND_ONCE)).right ?? { kind: 'dead' };
    }
    const grant = this.#receive.get(wire.export);
    if (grant === undefined) return { kind: 'dead' };
    this.#receive.delete(wire.export);
    const name = await grant.name;
    return name === null ? { kind: 'dead' } : (await g('portExtractRight', name, MACH_MSG_TYPE_MOVE_RECEIVE)).right ?? { kind: 'dead' };
  }

  /**
   * A receive right from `home` (its export `exp`) arrives: a fresh port with its queue limit
   * takes its place here, exported back to `home` (the gateway keeps a send right), which
   * forwards to it from now on.
   */
  async adopt(home: ProcessIndex, exp: number, qlimit: number | undefined): Promise<number> {
    const { g } = this.#here;
    const { kr, name } = await g('portAllocate', MACH_PORT_RIGHT_RECEIVE);
    if (kr !== KERN_SUCCESS) throw new Error(`gateway: no port for a receive right (kr ${kr})`);
    if (qlimit !== undefined) await g('portSetAttributes', name, MACH_PORT_LIMITS_INFO, { queue_limit: qlimit });
    if (this.#here.link.isDown(home)) return name;
    await g('portInsertRight', name, name, MACH_MSG_TYPE_MAKE_SEND);
    this.#add(this.#record(name), home, 1);
    await this.#armDeadName(name);
    this.#here.post(home, { op: 'migrated', export: exp, to: name });
    return name;
  }

  /** The receive right exported as `exp` lives on in `from` as its export `to`: the old port forwards there. */
  migrated(from: ProcessIndex, exp: number, to: number): void {
    const grant = this.#claimGrant(this.#receive, exp, from);
    if (grant === undefined) return this.#here.drop('migrated-not-granted');
    void this.#here.guard(grant.name.then((name) => name !== null ? this.#proxies.adoptForwarder(name, from, to)
      // It never came (its port died on the way in): the new home's port loses its only sender.
      : this.#here.post(from, { op: 'release', export: to, count: 1, kind: 'send' })));
  }

  /** One more send right for `exp`, which `from` holds, counted for process `to`. */
  async grant(from: ProcessIndex, exp: number, to: ProcessIndex): Promise<{ kr: number }> {
    const record = this.#send.get(exp);
    if (record === undefined || !this.#holds(record, from) ||
        !(to === ANY || (this.#here.isPeer(to) && to !== from && !this.#here.link.isDown(to)))) {
      this.#here.drop('grant-refused');
      return { kr: KERN_INVALID_RIGHT };
    }
    this.#add(record, to, 1);
    return { kr: KERN_SUCCESS };
  }

  /**
   * `from` asks that `proc` hear once every message `from` sent to `exp` before reached the
   * port: after them, a fence message goes into the port when it is a forwarder (its fence
   * follows them on), else `proc` is told now.
   */
  fence(from: ProcessIndex, exp: number, proc: ProcessIndex, seq: number): void {
    const record = this.#send.get(exp);
    if (record === undefined || !this.#holds(record, from) || !this.#here.isPeer(proc)) return this.#here.drop('fence-refused');
    this.#pin(record);
    const { g } = this.#here;
    record.tail = record.tail.then(() => this.#here.guard((async () => {
      if (this.#proxies.get(record.name) === undefined) return this.#here.post(proc, { op: 'fenced', export: exp, seq });
      const fence = { remotePort: record.name, remoteDisposition: MACH_MSG_TYPE_COPY_SEND, id: FENCE_ID, body: this.#here.fenceBody(proc, seq) };
      const { kr } = await g('machMsg', fence, MACH_SEND_MSG, MACH_PORT_NULL, 0);
      if (kr !== MACH_MSG_SUCCESS) this.#here.drop('undeliverable');
    })()).finally(() => this.#unpin(record)));
  }

  /** `from` gives back `count` rights of kind `kind` it was granted for `exp`. */
  release(from: ProcessIndex, exp: number, count: number, kind: 'send' | 'send-once' | 'receive'): void {
    const { g } = this.#here;
    if (kind === 'send-once') {
      if (this.#claimGrant(this.#once, exp, from) === undefined) return this.#here.drop('release-stale');
      // A send-once right destroyed sends its notification.
      void this.#here.guard(g('portDeallocate', exp));
      return;
    }
    if (kind === 'receive') {
      const grant = this.#claimGrant(this.#receive, exp, from);
      if (grant === undefined) return this.#here.drop('release-stale');
      // A receive right destroyed kills its port.
      void this.#here.guard(grant.name.then((name) => name === null ? undefined : g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1)));
      return;
    }
    const record = this.#send.get(exp);
    if (record === undefined) return this.#here.drop('release-stale');
    while ((record.held.get(from) ?? 0) < count && this.#holds(record, from, true)) { /* claims unclaimed rights */ }
    const held = record.held.get(from) ?? 0;
    if (held < count) this.#here.drop('release-over');
    this.#take(record, from, Math.min(held, count));
  }

  /** Process `proc` went down: what it was granted is released, as if it had given it all back. */
  peerDown(proc: ProcessIndex): void {
    for (const record of [...this.#send.values()]) {
      const held = record.held.get(proc) ?? 0;
      if (held > 0) this.#take(record, proc, held);
    }
    for (const [grants, kind] of [[this.#once, 'send-once'], [this.#receive, 'receive']] as const) {
      for (const [exp, grant] of [...grants]) if (grant.grantee === proc) this.release(proc, exp, 1, kind);
    }
  }

  /** A message on the notify port: a dead-name notification names an export whose port died. */
  notified(msg: MachMsgReceived): void {
    const name = bodyWord(msg.body);
    if (msg.id !== MACH_NOTIFY_DEAD_NAME || name === undefined) return;
    const record = this.#send.get(name);
    if (record !== undefined) {
      this.#send.delete(name);
      for (const [proc, held] of record.held) if (proc !== ANY && held > 0) this.#here.post(proc, { op: 'dead', export: name });
    }
    // The dead name (every uref, with the one the notification added) goes.
    void this.#here.guard(this.#here.g('portDestroy', name));
  }

  statistics(): { exports: number; grants: number; sendOnceExports: number; pendingReceives: number } {
    let grants = 0;
    for (const record of this.#send.values()) grants += record.total;
    return { exports: this.#send.size, grants, sendOnceExports: this.#once.size, pendingReceives: this.#receive.size };
  }

  /**
   * A message from `from` for export `exp`. Everything is checked first and claimed in this
   * turn (a release `from` posted after it cannot take the rights it needs); then it waits its
   * turn behind the export's earlier messages.
   */
  deliver(from: ProcessIndex, frame: Deliver): void {
    const { export: exp, once, msg } = frame;
    const rights = msg.reply === null ? msg.ports : [msg.reply, ...msg.ports];
    const ack = () => { if (!once) this.#here.post(from, { op: 'ack', export: exp, count: 1 }); };
    if (!rights.every((wire) => this.#mayPass(from, wire))) {
      this.#here.drop('forged-right');
      return ack();
    }
    const target = once ? this.#once.get(exp) : this.#send.get(exp);
    const granted = target !== undefined &&
      ('held' in target ? this.#holds(target, from) : target.grantee === from || target.grantee === ANY);
    if (!granted) {
      this.#here.drop(target === undefined ? 'unknown-export' : 'not-granted');
      // A proxy for a port that died before it was made hears it now.
      if (target === undefined && !once) this.#here.post(from, { op: 'dead', export: exp });
      this.#dispose(rights);
      return ack();
    }
    if ('held' in target) {
      this.#pin(target);
      // The port moved on: the sender learns where, once (a location hint).
      if (!target.hinted.has(from) && this.#proxies.hint(target.name, from, exp)) target.hinted.add(from);
    } else this.#once.delete(exp);
    const claimed = rights.map((wire) => this.#claim(wire));
    const send = () => this.#here.guard(this.#send1(from, frame, target, claimed)).then(ack);
    if ('held' in target) target.tail = target.tail.then(send);
    else void send();
  }

  async #send1(from: ProcessIndex, frame: Deliver, target: SendExport | Grant, claimed: readonly Claimed[]): Promise<void> {
    const { g } = this.#here;
    const { msg, once } = frame;
    const prepared: Prepared[] = [];
    for (const right of claimed) prepared.push(await this.#prepare(from, right));
    const ool: OolDescriptor[] = [];
    for (const bytes of msg.ool) ool.push(await this.#writeIn(bytes));
    const reply = msg.reply === null ? undefined : prepared[0]!;
    const ports = msg.reply === null ? prepared : prepared.slice(1);
    const send: MachMsgSend = {
      remotePort: target.name, remoteDisposition: once ? MACH_MSG_TYPE_MOVE_SEND_ONCE : MACH_MSG_TYPE_COPY_SEND,
      ...(reply === undefined ? {} : { localPort: reply.name, localDisposition: reply.disposition }),
      id: msg.id, body: msg.body, ports: ports.map(({ name, disposition }) => ({ name, disposition })), ool,
    };
    const { kr } = await g('machMsg', send, MACH_SEND_MSG, MACH_PORT_NULL, 0);
    if ('held' in target) this.#unpin(target);
    if (kr === MACH_MSG_SUCCESS) {
      this.#here.delivered++;
      for (const right of prepared) right.sent?.();
      return;
    }
    // Undeliverable (its port died on the way): destroyed as Mach destroys a message, rights and all.
    this.#here.drop('undeliverable');
    if (!('held' in target)) await g('portDeallocate', target.name);
    for (const right of prepared) await right.undo();
    for (const region of ool) await g('vmDeallocate', region.address, region.size);
  }

  /** The right in the gateway's space a claimed wire right becomes, for one message. */
  async #prepare(from: ProcessIndex, right: Claimed): Promise<Prepared> {
    const { g } = this.#here;
    if ('pinned' in right) {
      const record = right.pinned;
      return { name: record.name, disposition: MACH_MSG_TYPE_COPY_SEND, sent: () => this.#unpin(record), undo: async () => this.#unpin(record) };
    }
    if ('once' in right) return { name: right.once, disposition: MACH_MSG_TYPE_MOVE_SEND_ONCE, undo: () => g('portDeallocate', right.once) };
    const { wire } = right;
    if (wire.kind === 'send') {
      const name = await this.#proxies.acquire(wire.home, wire.export, async (proxy) => {
        await g('portInsertRight', proxy, proxy, MACH_MSG_TYPE_MAKE_SEND);
        return proxy;
      });
      if (name !== null) return { name, disposition: MACH_MSG_TYPE_MOVE_SEND, undo: () => g('portModRefs', name, MACH_PORT_RIGHT_SEND, -1) };
    } else if (wire.kind === 'send-once') {
      const name = await this.#proxies.oneShot(wire.home, wire.export, async (proxy) => proxy);
      if (name !== null) return { name, disposition: MACH_MSG_TYPE_MAKE_SEND_ONCE, undo: () => this.#proxies.discardOneShot(name) };
    } else if (wire.kind === 'receive') {
      const name = await this.adopt(from, wire.export, queueLimitOf(wire));
      return { name, disposition: MACH_MSG_TYPE_MOVE_RECEIVE, undo: () => g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1) };
    }
    const { name } = await g('portAllocate', MACH_PORT_RIGHT_DEAD_NAME);
    return { name, disposition: MACH_MSG_TYPE_MOVE_SEND, undo: () => g('portDeallocate', name) };
  }

  /** Bytes of out-of-line memory, laid in the gateway's map and sent (deallocated) with the message. */
  async #writeIn(bytes: Uint8Array): Promise<OolDescriptor> {
    const { g } = this.#here;
    if (bytes.byteLength === 0) return { address: 0, size: 0 };
    const { kr, address } = await g('vmAllocate', 0, bytes.byteLength, true);
    if (kr !== KERN_SUCCESS) throw new Error(`gateway: no memory for ${bytes.byteLength} out-of-line bytes (kr ${kr})`);
    await g('vmWrite', address, bytes);
    return { address, size: bytes.byteLength, deallocate: true };
  }

  /**
   * Whether `from` may hand over `wire`: its own rights, a send right a third process granted
   * to this one, or a right of this process that `from` was granted (checked, not guessed).
   */
  #mayPass(from: ProcessIndex, wire: WireRight): boolean {
    if (wire.kind === 'dead' || wire.home === from) return true;
    if (wire.home !== this.#here.self) return wire.kind === 'send';
    if (wire.kind === 'send') {
      const record = this.#send.get(wire.export);
      return record !== undefined && this.#holds(record, from);
    }
    const grant = wire.kind === 'send-once' ? this.#once.get(wire.export) : undefined;
    return grant !== undefined && (grant.grantee === from || grant.grantee === ANY);
  }

  #claim(wire: WireRight): Claimed {
    if (wire.kind === 'dead' || wire.home !== this.#here.self) return { wire };
    if (wire.kind === 'send') {
      const record = this.#send.get(wire.export)!;
      this.#pin(record);
      return { pinned: record };
    }
    // The same send-once right twice in one message: the second is dead.
    return this.#once.delete(wire.export) ? { once: wire.export } : { wire: { kind: 'dead' } };
  }

  /** The rights of a deliver refused whole go back to whoever granted them to this process. */
  #dispose(rights: readonly WireRight[]): void {
    for (const wire of rights) {
      if (wire.kind === 'dead' || wire.home === this.#here.self) continue;
      this.#here.post(wire.home, { op: 'release', export: wire.export, count: 1, kind: wire.kind });
    }
  }

  /** Whether `from` holds a right for `record` (claiming an unclaimed one if it has none, or `more`). */
  #holds(record: SendExport, from: ProcessIndex, more = false): boolean {
    if (!more && (record.held.get(from) ?? 0) > 0) return true;
    const unclaimed = record.held.get(ANY) ?? 0;
    if (unclaimed === 0 || from === ANY) return false;
    record.held.set(ANY, unclaimed - 1);
    record.held.set(from, (record.held.get(from) ?? 0) + 1);
    return true;
  }

  #claimGrant<G extends { readonly grantee: ProcessIndex }>(grants: Map<number, G>, exp: number, from: ProcessIndex): G | undefined {
    const grant = grants.get(exp);
    if (grant === undefined || (grant.grantee !== from && grant.grantee !== ANY)) return undefined;
    grants.delete(exp);
    return grant;
  }

  #record(name: number): SendExport {
    const record = newSendExport(name);
    this.#send.set(name, record);
    return record;
  }

  #add(record: SendExport, proc: ProcessIndex, count: number): void {
    record.held.set(proc, (record.held.get(proc) ?? 0) + count);
    record.total += count;
  }

  /** `count` of `proc`'s rights go. */
  #take(record: SendExport, proc: ProcessIndex, count: number): void {
    if (count <= 0) return;
    const held = (record.held.get(proc) ?? 0) - count;
    if (held > 0) record.held.set(proc, held);
    else {
      record.held.delete(proc);
      record.hinted.delete(proc);
    }
    record.total -= count;
    this.#forgetIfUnused(record);
  }

  #pin(record: SendExport): void { record.pins++; }

  #unpin(record: SendExport): void {
    record.pins--;
    this.#forgetIfUnused(record);
  }

  /** Nobody holds the export and no message needs it: the gateway's right goes (no-senders, if it was the last). */
  #forgetIfUnused(record: SendExport): void {
    if (record.total > 0 || record.pins > 0 || this.#send.get(record.name) !== record) return;
    this.#send.delete(record.name);
    void this.#here.guard(this.#here.g('portModRefs', record.name, MACH_PORT_RIGHT_SEND, -(1 + record.extra)));
  }

  async #armDeadName(name: number): Promise<void> {
    const { g, notify } = this.#here;
    const { previous } = await g('portRequestNotification', name, MACH_NOTIFY_DEAD_NAME, 1, notify, MACH_MSG_TYPE_MAKE_SEND_ONCE);
    // The name outlived a record this side had forgotten: its old request comes back, unneeded.
    if (previous !== MACH_PORT_NULL) await g('portDeallocate', previous);
  }
}
