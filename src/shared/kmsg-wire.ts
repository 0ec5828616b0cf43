/**
 * The wire form of a kernel message crossing from node to node (Mach `ipc_kmsg` after copyin):
 * one flat little-endian record, written straight into a channel ring or any byte buffer.
 *
 *   byte  0            8            16           24      28      32      36      40      44  45  46  48
 *        +------------+------------+------------+-------+-------+-------+-------+-------+---+---+---+
 *        | dest  f64  | sender f64 | reply  f64 | bits  | id    | seq   | body  | count | D | R | 0 |
 *        | PortId     | PortId     | PortId or 0| u32   | i32   | u32   | u32   | u32   |u8 |u8 |u16|
 *        +------------+------------+------------+-------+-------+-------+-------+-------+---+---+---+
 *   byte 48           48 + 8n          48 + 9n                 48 + 9n + body
 *        +---------------+---------------+------------------------+
 *        | n × port f64  | n × kind u8   | body (`body` bytes)    |
 *        +---------------+---------------+------------------------+
 *
 *   D: destType (MACH_MSG_TYPE_PORT_SEND or _SEND_ONCE); R: reply right kind, REPLY_NONE if none;
 *   count: n, the number of port descriptors. Ids are integers up to 2**53, exact as float64.
 *   Ports come before kinds so every float64 sits 8-byte aligned when the record starts aligned.
 */

/** A port right carried by a message: its kind and the global port it names. */
export interface WireRight {
  kind: 0 /* dead */ | 1 /* receive */ | 2 /* send */ | 3 /* send-once */;
  /** PortId, an integer up to 2**53. */
  port: number;
}

export interface WireKmsg {
  /** PortId, an integer up to 2**53. */
  dest: number;
  /** MACH_MSG_TYPE_PORT_SEND (17) or MACH_MSG_TYPE_PORT_SEND_ONCE (18). */
  destType: number;
  /** msgh_bits, u32. */
  bits: number;
  /** msgh_id, i32. */
  id: number;
  /** The sending task's kernel port (0 for the kernel): a PortId, an integer up to 2**53. */
  sender: number;
  /** Per-sender sequence number, u32 (0 for send-once). */
  seq: number;
  reply: WireRight | null;
  /** Port descriptors, in order. */
  rights: WireRight[];
  /** Inline data, any length. Decoded messages own a copy. */
  body: Uint8Array;
}

export const KMSG_HEADER_BYTES = 48;
/** Bytes per port descriptor: a float64 port and a u8 kind. */
export const KMSG_RIGHT_BYTES = 9;

const DEST = 0;
const SENDER = 8;
const REPLY_PORT = 16;
const BITS = 24;
const ID = 28;
const SEQ = 32;
const BODY_LENGTH = 36;
const RIGHT_COUNT = 40;
const DEST_TYPE = 44;
const REPLY_KIND = 45;
const RESERVED = 46;
/** The reply kind byte when the message has no reply port. */
const REPLY_NONE = 0xff;

const DEST_TYPE_SEND = 17;
const DEST_TYPE_SEND_ONCE = 18;
const MAX_ID = 2 ** 53;
/** Below this many bytes a byte loop beats a native copy call. */
const SMALL_BODY = 128;

/** Bytes `encodeKmsg` writes for `msg`. */
export function encodedLength(msg: WireKmsg): number {
  return KMSG_HEADER_BYTES + KMSG_RIGHT_BYTES * msg.rights.length + msg.body.length;
}

/** A DataView and a Uint8Array over the whole of one buffer; offsets below are into it. */
interface Memory {
  readonly view: DataView;
  readonly bytes: Uint8Array;
}

/**
 * The memory of the SharedArrayBuffer last coded. Records come from the same few rings over
 * and over, and a fresh DataView per message would cost more than the decoding itself.
 * Unshared buffers are not kept (they may be large and short-lived).
 */
let lastShared: SharedArrayBuffer | undefined;
let lastMemory: Memory | undefined;

function memoryOf(buffer: ArrayBufferLike): Memory {
  if (buffer === lastShared) return lastMemory!;
  const memory = { view: new DataView(buffer), bytes: new Uint8Array(buffer) };
  if (buffer instanceof SharedArrayBuffer) {
    lastShared = buffer;
    lastMemory = memory;
  }
  return memory;
}

/**
 * Writes `msg` at `offset` of `target` and returns the bytes written (`encodedLength(msg)`).
 * Throws RangeError, having written nothing, when a field is out of its range or the message
 * does not fit.
 */
export function encodeKmsg(msg: WireKmsg, target: DataView | Uint8Array, offset = 0): number {
  const length = encodedLength(msg);
  checkKmsg(msg);
  if (!Number.isInteger(offset) || offset < 0 || offset + length > target.byteLength) {
    throw new RangeError(`kmsg of ${length} bytes does not fit at offset ${offset} of ${target.byteLength}`);
  }
  const { view, bytes } = memoryOf(target.buffer);
  const base = target.byteOffset + offset;
  const { rights, body } = msg;
  const count = rights.length;
  view.setFloat64(base + DEST, msg.dest, true);
  view.setFloat64(base + SENDER, msg.sender, true);
  view.setFloat64(base + REPLY_PORT, msg.reply === null ? 0 : msg.reply.port, true);
  view.setUint32(base + BITS, msg.bits, true);
  view.setInt32(base + ID, msg.id, true);
  view.setUint32(base + SEQ, msg.seq, true);
  view.setUint32(base + BODY_LENGTH, body.length, true);
  view.setUint32(base + RIGHT_COUNT, count, true);
  view.setUint8(base + DEST_TYPE, msg.destType);
  view.setUint8(base + REPLY_KIND, msg.reply === null ? REPLY_NONE : msg.reply.kind);
  view.setUint16(base + RESERVED, 0, true);
  const ports = base + KMSG_HEADER_BYTES;
  const kinds = ports + 8 * count;
  for (let i = 0; i < count; i++) {
    const right = rights[i]!;
    view.setFloat64(ports + 8 * i, right.port, true);
    bytes[kinds + i] = right.kind;
  }
  const at = kinds + count;
  if (body.length < SMALL_BODY) {
    for (let i = 0; i < body.length; i++) bytes[at + i] = body[i]!;
  } else {
    bytes.set(body, at);
  }
  return length;
}

/**
 * Reads the kmsg of `length` bytes at `offset` of `source` (default: all of it). The body is a
 * copy in a fresh, unshared buffer, so the message outlives the ring slot it was read from.
 * Throws RangeError when the bytes are not one well-formed kmsg of exactly `length` bytes.
 */
export function decodeKmsg(source: DataView | Uint8Array, offset = 0, length = source.byteLength - offset): WireKmsg {
  if (!Number.isInteger(offset) || offset < 0 || length < KMSG_HEADER_BYTES || offset + length > source.byteLength) {
    throw new RangeError(`no kmsg header in ${length} bytes at offset ${offset}`);
  }
  const { view, bytes } = memoryOf(source.buffer);
  const base = source.byteOffset + offset;
  const count = view.getUint32(base + RIGHT_COUNT, true);
  const bodyLength = view.getUint32(base + BODY_LENGTH, true);
  if (KMSG_HEADER_BYTES + KMSG_RIGHT_BYTES * count + bodyLength !== length) {
    throw new RangeError(`kmsg with ${count} rights and ${bodyLength} body bytes is not ${length} bytes`);
  }
  const destType = bytes[base + DEST_TYPE]!;
  const replyKind = bytes[base + REPLY_KIND]!;
  if ((destType !== DEST_TYPE_SEND && destType !== DEST_TYPE_SEND_ONCE) || (replyKind > 3 && replyKind !== REPLY_NONE)) {
    throw new RangeError(`kmsg with destType ${destType} and reply kind ${replyKind}`);
  }
  const ports = base + KMSG_HEADER_BYTES;
  const kinds = ports + 8 * count;
  const rights = new Array<WireRight>(count);
  for (let i = 0; i < count; i++) {
    const kind = bytes[kinds + i]!;
    if (kind > 3) throw new RangeError(`kmsg right ${i} has kind ${kind}`);
    rights[i] = { kind: kind as WireRight['kind'], port: view.getFloat64(ports + 8 * i, true) };
  }
  const at = kinds + count;
  let body: Uint8Array;
  if (bodyLength < SMALL_BODY) {
    body = new Uint8Array(bodyLength);
    for (let i = 0; i < bodyLength; i++) body[i] = bytes[at + i]!;
  } else {
    // slice() of a view on a SharedArrayBuffer copies into a new, unshared ArrayBuffer.
    body = bytes.slice(at, at + bodyLength);
  }
  return {
    dest: view.getFloat64(base + DEST, true),
    destType,
    bits: view.getUint32(base + BITS, true),
    id: view.getInt32(base + ID, true),
    sender: view.getFloat64(base + SENDER, true),
    seq: view.getUint32(base + SEQ, true),
    reply: replyKind === REPLY_NONE
      ? null
      : { kind: replyKind as WireRight['kind'], port: view.getFloat64(base + REPLY_PORT, true) },
    rights,
    body,
  };
}

const isId = (value: number): boolean => Number.isInteger(value) && value >= 0 && value <= MAX_ID;
const isU32 = (value: number): boolean => Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
const isKind = (value: number): boolean => value === 0 || value === 1 || value === 2 || value === 3;

function checkKmsg(msg: WireKmsg): void {
  if (!isId(msg.dest)) throw new RangeError(`msg.dest must be an integer from 0 to 2**53, not ${msg.dest}`);
  if (!isId(msg.sender)) throw new RangeError(`msg.sender must be an integer from 0 to 2**53, not ${msg.sender}`);
  if (msg.destType !== DEST_TYPE_SEND && msg.destType !== DEST_TYPE_SEND_ONCE) {
    throw new RangeError(`msg.destType must be 17 (PORT_SEND) or 18 (PORT_SEND_ONCE), not ${msg.destType}`);
  }
  if (!isU32(msg.bits)) throw new RangeError(`msg.bits must be a u32, not ${msg.bits}`);
  if (!Number.isInteger(msg.id) || msg.id < -(2 ** 31) || msg.id >= 2 ** 31) {
    throw new RangeError(`msg.id must be an i32, not ${msg.id}`);
  }
  if (!isU32(msg.seq)) throw new RangeError(`msg.seq must be a u32, not ${msg.seq}`);
  if (msg.reply !== null && (!isKind(msg.reply.kind) || !isId(msg.reply.port))) {
    throw new RangeError(`msg.reply must be a right kind 0-3 and a port id, not ${msg.reply.kind}:${msg.reply.port}`);
  }
  for (let i = 0; i < msg.rights.length; i++) {
    const right = msg.rights[i]!;
    if (!isKind(right.kind) || !isId(right.port)) {
      throw new RangeError(`msg.rights[${i}] must be a right kind 0-3 and a port id, not ${right.kind}:${right.port}`);
    }
  }
}
