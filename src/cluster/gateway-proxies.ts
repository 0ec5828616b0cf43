/**
 * The gateway's sending side: proxies. A right here to a port homed in another process is a
 * right to a proxy, a port whose receive right the gateway holds in its port set; what arrives
 * on it is forwarded to the home, in order, at most `window` messages ahead of the home's
 * acknowledgements. A proxy without credit leaves the set, so its queue fills and local senders
 * block at its queue limit as Mach's do. A proxy's no-senders (checked by make-send count, as
 * Mach does) gives the home back every right it granted; the home's word that the port died
 * destroys the proxy, so local names turn dead and their dead-name requests fire.
 *
 * A send-once right gets a one-shot proxy, destroyed after its one message (the send-once
 * notification a destroyed right sends it is forwarded like any message). A forwarder is the
 * old home of a receive right that moved away: its port became a proxy for the new one. A
 * location hint moves a proxy to the port's new home, behind a fence (gateway.ts says how).
 */
import {
  KERN_SUCCESS, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_NOTIFY_NO_SENDERS, MACH_PORT_NULL, MACH_PORT_RECEIVE_STATUS,
  MACH_PORT_RIGHT_RECEIVE, MACH_PORT_RIGHT_SEND,
} from '../shared/constants.js';
import { KernError } from '../shared/errors.js';
import type { MachMsgReceived } from '../shared/message.js';
import { bodyWord, DEAD, type GatewayContext, type ReceiveStatus } from './gateway-core.js';
import { key, looksLikeNoSenders, newProxy, type After, type Proxy, type Target, type ToWire } from './gateway-records.js';
import type { ProcessIndex } from './link.js';
import type { WireRight } from './wire.js';

export type { After, ToWire };

export class Proxies {
  readonly #here: GatewayContext;
  readonly #toWire: ToWire;
  readonly #byKey = new Map<string, Proxy | Promise<Proxy>>();
  readonly #byName = new Map<number, Proxy>();
  readonly #oneShots = new Map<number, Target>();
  /**
   * Acknowledgements still due from a proxy's old home after a switch, by the old (home, export):
   * they come before any for a later proxy there, oldest switch first.
   */
  readonly #owedAcks = new Map<string, Array<{ readonly proxy: Proxy; pending: number }>>();
  readonly #fences = new Map<number, Proxy>();
  #fenceSeq = 0;
  #hintsFollowed = 0;

  constructor(here: GatewayContext, toWire: ToWire) {
    this.#here = here;
    this.#toWire = toWire;
  }

  /** The proxy whose receive right the gateway holds under `name`. */
  get(name: number): Proxy | undefined { return this.#byName.get(name); }

  /**
   * One more right to `home`'s export `exp`, granted to this process: `make` makes it from the
   * proxy (in the gateway's space, or extracted), made now so a no-senders check after it sees
   * it. Null when the home is down.
   */
  async acquire<T>(home: ProcessIndex, exp: number, make: (name: number) => Promise<T>): Promise<T | null> {
    for (;;) {
      if (this.#here.link.isDown(home)) return null;
      const proxy = await this.#open(home, exp);
      // Checked in the same turn the right is made: a no-senders check starts after it or not at all;
      // a proxy that switched to another home meanwhile is not the one `home` granted it for.
      if (proxy.closing !== null || proxy.gone || proxy.home !== home || proxy.export !== exp) continue;
      proxy.count++;
      const made = make(proxy.name);
      if (!proxy.armed) {
        proxy.armed = true;
        await this.#arm(proxy, 1);
      }
      return made;
    }
  }

  /** A one-shot proxy for `home`'s send-once export `exp`; `make` makes its right. Null when the home is down. */
  async oneShot<T>(home: ProcessIndex, exp: number, make: (name: number) => Promise<T>): Promise<T | null> {
    if (this.#here.link.isDown(home)) return null;
    const name = await this.#allocate();
    this.#oneShots.set(name, { name, home, export: exp });
    return make(name);
  }

  /** A one-shot proxy whose right was never made (its message failed): its home's right goes too. */
  async discardOneShot(name: number): Promise<void> {
    const target = this.#oneShots.get(name);
    if (target === undefined) return;
    this.#oneShots.delete(name);
    await this.#here.g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1);
    this.#here.post(target.home, { op: 'release', export: target.export, count: 1, kind: 'send-once' });
  }

  /**
   * The receive right the gateway holds under `name`, whose receive right moved to `home`
   * (exported there as `exp`), forwards there from now on: what is queued on it and what comes.
   */
  async adoptForwarder(name: number, home: ProcessIndex, exp: number): Promise<void> {
    const proxy = newProxy(name, home, exp, true);
    this.#byName.set(name, proxy);
    this.#byKey.set(key(home, exp), proxy);
    const { g, set } = this.#here;
    const status = (await g('portGetAttributes', name, MACH_PORT_RECEIVE_STATUS)).info as ReceiveStatus | undefined;
    await g('portMoveMember', name, set);
    // From its current make-send count: with no senders left it closes at once, after forwarding its queue.
    await this.#arm(proxy, status?.mps_mscount ?? 0);
  }

  /**
   * A send right to proxy `proxy` the gateway received, passed on to `dest`: the home grants one
   * more for a third process (before the gateway's own uref goes, so the home's count never
   * touches zero on the way); a right going home needs nothing, the home sees we hold one.
   */
  async passOn(proxy: Proxy, dest: ProcessIndex, after: After): Promise<WireRight> {
    const { home, export: exp } = proxy;
    let wire: WireRight = { kind: 'send', home, export: exp };
    // Until the message carrying it is posted, a switch does not release this process's rights at `home`.
    proxy.passing++;
    after.push(() => {
      proxy.passing--;
      this.#settleOwed(proxy);
      return this.#here.g('portModRefs', proxy.name, MACH_PORT_RIGHT_SEND, -1);
    });
    if (dest !== home) {
      const answer = await this.#here.link.request(home, 'gateway', { op: 'grant', export: exp, to: dest });
      if ((answer as { kr?: unknown }).kr !== KERN_SUCCESS) wire = DEAD;
    }
    return wire;
  }

  /**
   * A location hint for `proc`, which sent to the export of forwarder `name` as `exp`: the
   * forwarder's home grants `proc` a right, then `proc` hears where the port is. False when
   * there is nothing to tell.
   */
  hint(name: number, proc: ProcessIndex, exp: number): boolean {
    const proxy = this.#byName.get(name);
    if (proxy === undefined || !proxy.forwarder || proxy.gone || proxy.home === proc || this.#here.link.isDown(proxy.home)) return false;
    const { home, export: to } = proxy;
    void this.#here.guard((async () => {
      const answer = await this.#here.link.request(home, 'gateway', { op: 'grant', export: to, to: proc });
      if ((answer as { kr?: unknown }).kr === KERN_SUCCESS) this.#here.post(proc, { op: 'moved', export: exp, home, to });
    })());
    return true;
  }

  /**
   * `from` says the port behind its export `exp` lives in `home` as export `to` (granted to this
   * process): the proxy switches there once a fence through the old path has reached the port,
   * so nothing sent after the switch overtakes what was sent before it. A hint
   * it cannot follow (the proxy is closing or switching, or already has a twin for `to`) is
   * given back.
   */
  moved(from: ProcessIndex, exp: number, home: ProcessIndex, to: number): void {
    const proxy = this.#byKey.get(key(from, exp));
    const decline = () => this.#here.post(home, { op: 'release', export: to, count: 1, kind: 'send' });
    if (!this.#here.isPeer(home)) return this.#here.drop('hint-refused');
    if (proxy === undefined || proxy instanceof Promise || proxy.gone || proxy.closing !== null || proxy.fence !== null ||
        this.#byKey.has(key(home, to)) || this.#here.link.isDown(home)) return decline();
    const seq = this.#fenceSeq = this.#fenceSeq % 0x7fffffff + 1;
    const arrived = new Promise<boolean>((settle) => { proxy.fence = { seq, home, settle }; });
    this.#fences.set(seq, proxy);
    this.#chain(proxy, async () => {
      this.#here.post(from, { op: 'fence', export: exp, for: this.#here.self, seq });
      const ok = await arrived;
      this.#fences.delete(seq);
      proxy.fence = null;
      if (!ok || proxy.gone || this.#byKey.has(key(home, to))) return decline();
      if (proxy.unacked > 0) this.#owedAcks.set(key(from, exp), [...this.#owedAcks.get(key(from, exp)) ?? [], { proxy, pending: proxy.unacked }]);
      this.#byKey.delete(key(from, exp));
      this.#byKey.set(key(home, to), proxy);
      proxy.owed.push({ home: from, export: exp, count: proxy.count });
      Object.assign(proxy, { home, export: to, count: 1, unacked: 0 });
      this.#hintsFollowed++;
      this.#settleOwed(proxy);
    });
  }

  /** Fence `seq` of this process reached its port: the proxy waiting on it switches. */
  fenced(seq: number): void {
    const proxy = this.#fences.get(seq);
    if (proxy === undefined) return this.#here.drop('fenced-stale');
    proxy.fence?.settle(true);
  }

  /** A message the gateway received on a member of its port set other than the notify port. */
  async received(msg: MachMsgReceived): Promise<void> {
    const proxy = this.#byName.get(msg.localPort);
    const fence = proxy === undefined ? undefined : this.#here.fenceOf(msg);
    if (proxy !== undefined) {
      // The gateway's own fence message: it goes on to wherever the messages before it went.
      if (fence !== undefined) {
        this.#chain(proxy, async () => this.#here.post(proxy.home, { op: 'fence', export: proxy.export, for: fence.proc, seq: fence.seq }));
      } else if (looksLikeNoSenders(msg)) this.#chain(proxy, () => this.#noSenders(proxy, msg));
      else await this.#take(proxy, msg);
      return;
    }
    const once = this.#oneShots.get(msg.localPort);
    if (once === undefined) {
      this.#here.drop('stray-message');
      return;
    }
    this.#oneShots.delete(msg.localPort);
    void this.#here.guard(this.#forward(once, msg, true)
      .finally(() => this.#here.g('portModRefs', once.name, MACH_PORT_RIGHT_RECEIVE, -1)));
  }

  /** `count` messages forwarded through the proxy for `home`'s `exp` reached the real port. */
  acked(home: ProcessIndex, exp: number, count: number): void {
    const owed = this.#owedAcks.get(key(home, exp)) ?? [];
    while (count > 0 && owed.length > 0) {
      const first = owed[0]!;
      const taken = Math.min(count, first.pending);
      first.pending -= taken;
      if (first.pending === 0) owed.shift();
      this.#credit(first.proxy, taken);
      count -= taken;
    }
    if (owed.length === 0) this.#owedAcks.delete(key(home, exp));
    const proxy = this.#byKey.get(key(home, exp));
    if (count === 0 || proxy === undefined || proxy instanceof Promise) return;
    proxy.unacked = Math.max(0, proxy.unacked - count);
    this.#credit(proxy, count);
  }

  #credit(proxy: Proxy, count: number): void {
    proxy.inflight = Math.max(0, proxy.inflight - count);
    if (proxy.out && !proxy.gone && proxy.inflight < this.#here.window) {
      proxy.out = false;
      void this.#here.guard(this.#here.g('portMoveMember', proxy.name, this.#here.set));
    }
  }

  /** `home` says its export `exp` died: the proxy dies, local names turn dead. */
  dead(home: ProcessIndex, exp: number): void {
    const proxy = this.#byKey.get(key(home, exp));
    if (proxy !== undefined && !(proxy instanceof Promise)) void this.#here.guard(this.#destroy(proxy));
  }

  /**
   * Process `home` went down: every proxy, forwarder and one-shot proxy for its ports dies, and
   * so does one switching there. One that switched away from it lives on.
   */
  homeDown(home: ProcessIndex): void {
    for (const [k, owed] of [...this.#owedAcks]) if (k.startsWith(`${home}:`)) {
      this.#owedAcks.delete(k);
      for (const { proxy, pending } of owed) this.#credit(proxy, pending);
    }
    for (const proxy of [...this.#byName.values()]) {
      for (let index = proxy.owed.length - 1; index >= 0; index--) if (proxy.owed[index]!.home === home) proxy.owed.splice(index, 1);
      if (proxy.home === home || proxy.fence?.home === home) void this.#here.guard(this.#destroy(proxy));
    }
    for (const [name, target] of [...this.#oneShots]) {
      if (target.home !== home) continue;
      this.#oneShots.delete(name);
      void this.#here.guard(this.#here.g('portModRefs', name, MACH_PORT_RIGHT_RECEIVE, -1));
    }
  }

  statistics(): { proxies: number; forwarders: number; oneShots: number; acksOutstanding: number; hintsFollowed: number } {
    let forwarders = 0;
    let acksOutstanding = 0;
    for (const proxy of this.#byName.values()) {
      if (proxy.forwarder) forwarders++;
      acksOutstanding += proxy.inflight;
    }
    return { proxies: this.#byName.size - forwarders, forwarders, oneShots: this.#oneShots.size, acksOutstanding, hintsFollowed: this.#hintsFollowed };
  }

  /** Takes a message off `proxy` for forwarding; out of the set when its credit is spent. */
  async #take(proxy: Proxy, msg: MachMsgReceived): Promise<void> {
    proxy.inflight++;
    this.#chain(proxy, () => this.#forward(proxy, msg, false));
    if (proxy.inflight >= this.#here.window && !proxy.out && !proxy.gone) {
      proxy.out = true;
      // Awaited before the next receive, so no further message of this proxy is taken.
      await this.#here.g('portMoveMember', proxy.name, MACH_PORT_NULL);
    }
  }

  #chain(proxy: Proxy, work: () => Promise<unknown>): void {
    proxy.tail = proxy.tail.then(() => this.#here.guard(work()));
  }

  async #forward(target: Target | Proxy, msg: MachMsgReceived, once: boolean): Promise<void> {
    const { g } = this.#here;
    const dest = target.home;
    const after: After = [];
    const reply = msg.remotePort === MACH_PORT_NULL ? null : await this.#toWire(msg.remotePort, msg.remoteType, dest, after);
    const ports: WireRight[] = [];
    for (const port of msg.ports) ports.push(await this.#toWire(port.name, port.type, dest, after));
    const ool: Uint8Array[] = [];
    for (const region of msg.ool) {
      // Still mapped by another task (its sender shared it): the copy that crosses does not stay shared.
      if ((await g('vmRegion', region.address)).region?.shared === true) this.#here.sharedOolCopied++;
      const read = await g('vmRead', region.address, region.size);
      if (read.data === undefined) this.#here.drop('ool-unreadable');
      ool.push(read.data ?? new Uint8Array(0));
      await g('vmDeallocate', region.address, region.size);
    }
    this.#here.post(dest, { op: 'deliver', export: target.export, once, msg: { id: msg.id, body: msg.body, reply, ports, ool } });
    if ('unacked' in target && !once) target.unacked++;
    this.#here.forwarded++;
    for (const step of after) await step();
  }

  /**
   * A no-senders notification on `proxy`, after everything queued before it was forwarded.
   * Mach's check: a send right made since (make-send count above the notification's) or still
   * held cancels it, and the request is armed again. A task's own message shaped like one (the
   * request is still armed) is forwarded as the message it is.
   */
  async #noSenders(proxy: Proxy, msg: MachMsgReceived): Promise<void> {
    let settle!: (closed: boolean) => void;
    proxy.closing = new Promise((resolve) => { settle = resolve; });
    const { g } = this.#here;
    try {
      const status = (await g('portGetAttributes', proxy.name, MACH_PORT_RECEIVE_STATUS)).info as ReceiveStatus | undefined;
      if (proxy.gone || status === undefined) return settle(true);
      if (status.mps_nsrequest) {
        proxy.closing = null;
        settle(false);
        await this.#take(proxy, msg);
        return;
      }
      if (status.mps_srights || status.mps_mscount > (bodyWord(msg.body) ?? 0)) {
        await this.#arm(proxy, status.mps_mscount);
        proxy.closing = null;
        return settle(false);
      }
      this.#forget(proxy);
      await g('portModRefs', proxy.name, MACH_PORT_RIGHT_RECEIVE, -1);
      this.#here.post(proxy.home, { op: 'release', export: proxy.export, count: proxy.count, kind: 'send' });
      settle(true);
    } catch (error) {
      settle(true);
      throw error;
    }
  }

  async #arm(proxy: Proxy, sync: number): Promise<void> {
    const reply = await this.#here.g('portRequestNotification', proxy.name, MACH_NOTIFY_NO_SENDERS, sync, proxy.name,
      MACH_MSG_TYPE_MAKE_SEND_ONCE);
    if (reply.kr !== KERN_SUCCESS && !proxy.gone) this.#here.drop('nsrequest-refused');
    // A previous request would mean two: never made, so never handed back.
    if (reply.previous !== MACH_PORT_NULL) this.#here.drop('nsrequest-previous');
  }

  /** The open proxy for (`home`, `exp`), made if there is none; waits out a no-senders check. */
  async #open(home: ProcessIndex, exp: number): Promise<Proxy> {
    for (;;) {
      const k = key(home, exp);
      let entry = this.#byKey.get(k);
      if (entry === undefined) {
        entry = this.#create(home, exp);
        this.#byKey.set(k, entry);
      }
      const proxy = await entry;
      if (proxy.closing === null || !(await proxy.closing)) return proxy;
    }
  }

  async #create(home: ProcessIndex, exp: number): Promise<Proxy> {
    const k = key(home, exp);
    try {
      const name = await this.#allocate();
      const proxy = newProxy(name, home, exp, false);
      this.#byName.set(name, proxy);
      this.#byKey.set(k, proxy);
      // The home may have gone down while this was made: homeDown did not see it.
      if (this.#here.link.isDown(home)) await this.#destroy(proxy);
      return proxy;
    } catch (error) {
      this.#byKey.delete(k);
      throw error;
    }
  }

  /** A fresh port in the port set. */
  async #allocate(): Promise<number> {
    const { g, set } = this.#here;
    const { kr, name } = await g('portAllocate', MACH_PORT_RIGHT_RECEIVE);
    if (kr !== KERN_SUCCESS) throw new KernError(kr, 'gateway: proxy port');
    await g('portMoveMember', name, set);
    return name;
  }

  #forget(proxy: Proxy): void {
    proxy.gone = true;
    proxy.fence?.settle(false);
    this.#settleOwed(proxy);
    if (this.#byName.get(proxy.name) === proxy) this.#byName.delete(proxy.name);
    const k = key(proxy.home, proxy.export);
    if (this.#byKey.get(k) === proxy) this.#byKey.delete(k);
  }

  /**
   * Destroys the proxy's receive right: local send rights become dead names. A send right the
   * gateway holds under the same name (a forwarder's port exported in turn) becomes one too, and
   * its dead-name request tells the processes holding it.
   */
  async #destroy(proxy: Proxy): Promise<void> {
    if (proxy.gone) return;
    this.#forget(proxy);
    await this.#here.g('portModRefs', proxy.name, MACH_PORT_RIGHT_RECEIVE, -1);
  }

  /** The rights a switched proxy held at its old homes go back once no message naming them is still on its way. */
  #settleOwed(proxy: Proxy): void {
    if (proxy.passing > 0) return;
    for (const { home, export: exp, count } of proxy.owed.splice(0)) {
      if (count > 0) this.#here.post(home, { op: 'release', export: exp, count, kind: 'send' });
    }
  }
}
