/**
 * One (this process, peer) pair of the NATS transport: the data frames we owe the peer and the
 * ones we take from it. Go-back-N: data frames are numbered per pair from 1; the receiver takes
 * only the next one, drops what is older (a duplicate) and what is newer (a gap: NATS lost a
 * frame, from a slow consumer or a reconnect), and says where to resume; the sender keeps every
 * frame until the peer's cumulative acknowledgement covers it and sends them again from there.
 * Knows nothing of NATS: the transport passes a `send` that stamps, authenticates and publishes.
 */
import { CHUNK_BYTES, FLAG_FIRST, FLAG_LAST, FrameKind, type Frame } from './transport-frame.js';

/** Frames in flight (sent, not yet acknowledged) per pair, and their bytes; more waits here. */
const WINDOW_FRAMES = 512;
const WINDOW_BYTES = 16 * 1024 * 1024;
/** The receiver acknowledges at once after this many frames (else on the transport's tick). */
const ACK_EVERY = 64;
/** Two requests to resend from the same frame closer than this are one. */
const RESEND_HOLDOFF_MS = 50;
/** No acknowledgement for this long while frames are in flight: send them again. */
const RESEND_AFTER_MS = 1_000;
/** While a gap persists, ask again for a resend this often (the request itself may be lost). */
const NACK_EVERY_MS = 100;
const EMPTY = new Uint8Array(0);

interface Chunk {
  readonly seq: number;
  readonly flags: number;
  readonly bytes: Uint8Array;
}

/** Publishes one frame to the peer; false when it could not go out (we are disconnected). */
export type Send = (kind: FrameKind, flags: number, seq: number, payload: Uint8Array) => boolean;

export type Receipt =
  | { readonly kind: 'message'; readonly bytes: Uint8Array }
  | { readonly kind: 'partial' | 'duplicate' }
  | { readonly kind: 'gap'; readonly expected: number; readonly first: boolean };

export class Peer {
  down = false;
  /** When we last heard a genuine frame from the peer, and its newest stamp (replays are older). */
  lastHeardAt: number;
  lastStamp = 0;
  /** When we last sent the peer anything (a data frame carries the ack: no extra ack needed). */
  lastSentAt = 0;
  /** When the peer's acknowledgement last moved (or we last resent): no progress → resend. */
  lastProgressAt: number;

  // Outbound: outbox[head..] hold seq acked+1 ..; those up to sentUpTo went out at least once.
  readonly #outbox: Chunk[] = [];
  #head = 0;
  #nextSeq = 1;
  #acked = 0;
  #sentUpTo = 0;
  #inFlightBytes = 0;
  #lastResendFrom = 0;
  #lastResendAt = -Infinity;

  // Inbound: the next seq we take, the chunks of a message not yet complete.
  #expected = 1;
  #fragments: Uint8Array[] = [];
  #owedAcks = 0;
  #inGap = false;
  #lastNackAt = -Infinity;
  #lastGoodbyeAt = -Infinity;

  constructor(readonly index: number, now: number) {
    this.lastHeardAt = now;
    this.lastProgressAt = now;
  }

  /** The cumulative acknowledgement our frames to the peer carry. */
  get ackToSend(): number { return this.#expected - 1; }
  get expected(): number { return this.#expected; }
  get inFlight(): number { return this.#sentUpTo - this.#acked; }
  /** Frames waiting for room in the window (not sent yet). */
  get queued(): number { return this.#outbox.length - this.#head - this.inFlight; }
  get inGap(): boolean { return this.#inGap; }

  /** Cuts a serialized message into chunks numbered in order. */
  enqueue(bytes: Uint8Array): void {
    const count = Math.max(1, Math.ceil(bytes.byteLength / CHUNK_BYTES));
    for (let i = 0; i < count; i++) {
      const flags = (i === 0 ? FLAG_FIRST : 0) | (i === count - 1 ? FLAG_LAST : 0);
      const chunk = count === 1 ? bytes : bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES);
      this.#outbox.push({ seq: this.#nextSeq++, flags, bytes: chunk });
    }
  }

  /** Sends what the window allows; returns how many frames went out. */
  pump(send: Send, now: number): number {
    let sent = 0;
    for (;;) {
      const chunk = this.#outbox[this.#head + this.#sentUpTo - this.#acked];
      if (chunk === undefined) break;
      const full = this.inFlight >= WINDOW_FRAMES || this.#inFlightBytes + chunk.bytes.byteLength > WINDOW_BYTES;
      if (full && this.inFlight > 0) break;
      if (!send(FrameKind.data, chunk.flags, chunk.seq, chunk.bytes)) break;
      if (this.inFlight === 0) this.lastProgressAt = now;
      this.#sentUpTo = chunk.seq;
      this.#inFlightBytes += chunk.bytes.byteLength;
      sent++;
    }
    return sent;
  }

  /** The peer acknowledged everything up to `ack`; true when that freed frames. */
  acknowledge(ack: number, now: number): boolean {
    if (ack <= this.#acked || ack > this.#sentUpTo) return false;
    while (this.#acked < ack) {
      const chunk = this.#outbox[this.#head++]!;
      this.#inFlightBytes -= chunk.bytes.byteLength;
      this.#acked = chunk.seq;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#outbox.length) {
      this.#outbox.splice(0, this.#head);
      this.#head = 0;
    }
    this.lastProgressAt = now;
    return true;
  }

  /**
   * Sends again every frame in flight from `from` (go-back-N); `force` skips the holdoff (after
   * a reconnect, when nothing any earlier can have arrived). Returns how many went out.
   */
  resend(from: number, send: Send, now: number, force = false): number {
    const start = Math.max(from, this.#acked + 1);
    if (start > this.#sentUpTo) return 0;
    if (!force && start >= this.#lastResendFrom && now - this.#lastResendAt < RESEND_HOLDOFF_MS) return 0;
    this.#lastResendFrom = start;
    this.#lastResendAt = now;
    this.lastProgressAt = now;
    let sent = 0;
    for (let seq = start; seq <= this.#sentUpTo; seq++) {
      const chunk = this.#outbox[this.#head + seq - this.#acked - 1]!;
      if (!send(FrameKind.data, chunk.flags, chunk.seq, chunk.bytes)) break;
      sent++;
    }
    return sent;
  }

  /** A genuine data frame from the peer: a complete message, a part of one, or nothing. */
  receive(frame: Frame): Receipt {
    if (frame.seq < this.#expected) {
      this.#owedAcks++;
      return { kind: 'duplicate' };
    }
    if (frame.seq > this.#expected) {
      const first = !this.#inGap;
      this.#inGap = true;
      return { kind: 'gap', expected: this.#expected, first };
    }
    this.#inGap = false;
    this.#expected++;
    this.#owedAcks++;
    const whole = (frame.flags & (FLAG_FIRST | FLAG_LAST)) === (FLAG_FIRST | FLAG_LAST);
    if (whole) return { kind: 'message', bytes: frame.payload };
    if (frame.flags & FLAG_FIRST) this.#fragments = [];
    // NATS may reuse its read buffer: a chunk kept past this call is copied.
    this.#fragments.push(Uint8Array.from(frame.payload));
    if (!(frame.flags & FLAG_LAST)) return { kind: 'partial' };
    const bytes = Buffer.concat(this.#fragments);
    this.#fragments = [];
    return { kind: 'message', bytes };
  }

  /** Whether an acknowledgement should go out now rather than on the next tick. */
  get ackNow(): boolean { return this.#owedAcks >= ACK_EVERY; }

  /** Any frame we send carries the ack, so sending one settles what we owed. */
  sent(now: number): void {
    this.#owedAcks = 0;
    this.lastSentAt = now;
  }

  /** Whether to ask (again) for a resend: a gap persists, and the last request may have been lost. */
  nackDue(now: number): boolean {
    if (!this.#inGap || now - this.#lastNackAt < NACK_EVERY_MS) return false;
    this.#lastNackAt = now;
    return true;
  }

  /**
   * The pair's timers, run on the transport's tick while connected: 'silent' when the peer has
   * not been heard for deadAfterMs (it is down), else how many frames went again because nothing
   * was acknowledged for a while; also asks again for a resend, and sends an owed ack or a heartbeat.
   */
  tick(send: Send, now: number, heartbeatMs: number, deadAfterMs: number): number | 'silent' {
    if (now - this.lastHeardAt > deadAfterMs) return 'silent';
    const resent = this.inFlight > 0 && now - this.lastProgressAt >= RESEND_AFTER_MS ? this.resend(0, send, now, true) : 0;
    if (this.nackDue(now)) send(FrameKind.nack, 0, this.#expected, EMPTY);
    else if (this.#owedAcks > 0 || now - this.lastSentAt >= heartbeatMs) send(FrameKind.ack, 0, 0, EMPTY);
    return resent;
  }

  /** Whether to tell a peer that is down to us so again (at most every 250 ms). */
  goodbyeDue(now: number): boolean {
    if (now - this.#lastGoodbyeAt < 250) return false;
    this.#lastGoodbyeAt = now;
    return true;
  }

  /** The peer is down: what we owed it is dropped. */
  drop(): void {
    this.down = true;
    this.#outbox.length = 0;
    this.#head = 0;
    this.#acked = this.#sentUpTo = this.#nextSeq - 1;
    this.#inFlightBytes = 0;
    this.#fragments = [];
  }
}
