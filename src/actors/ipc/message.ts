/**
 * The kernel's helpers for messages (shapes in shared/message.ts): a message's size for
 * rcv_size and the ring form of a kernel message (dispositions are mach-msg.ts's). A
 * kernel message crosses nodes as it is (structured clone) or through the ring (kmsg-wire.ts).
 */
import { MACH_MSG_TYPE_PORT_SEND, MACH_MSG_TYPE_PORT_SEND_ONCE } from '../../shared/constants.js';
import type { WireKmsg, WireRight } from '../../shared/kmsg-wire.js';
import type { KMsg, RightInTransit } from '../../shared/message.js';
import type { PortId } from '../../shared/types.js';

/** Bytes of mach_msg_header_t (ILP32: bits, size, remote, local, seqno or voucher, id). */
export const MACH_MSG_HEADER_SIZE = 24;
/** Bytes of mach_msg_body_t (the descriptor count of a complex message). */
export const MACH_MSG_BODY_SIZE = 4;
/** Bytes of one port or out-of-line descriptor (ILP32 mach_msg_port_descriptor_t / _ool_). */
export const MACH_MSG_DESCRIPTOR_SIZE = 12;

/**
 * A message's size as mach_msg's rcv_size is measured against it, laid out as Mach would lay out
 * the received message on a 32-bit task: the header, then, for a message carrying port rights or
 * out-of-line regions, the descriptor count and one descriptor each, then the inline body bytes.
 * The reply right travels in the header and adds nothing; out-of-line memory counts by its
 * descriptor, not its size.
 */
export function messageSize(kmsg: KMsg): number {
  const descriptors = kmsg.rights.length + kmsg.ool.length;
  const complex = descriptors === 0 ? 0 : MACH_MSG_BODY_SIZE + MACH_MSG_DESCRIPTOR_SIZE * descriptors;
  return MACH_MSG_HEADER_SIZE + complex + kmsg.body.length;
}

const WIRE_KINDS = ['dead', 'receive', 'send', 'send-once'] as const;

function toWireRight(right: RightInTransit): WireRight {
  return right.kind === 'dead' ? { kind: 0, port: 0 } : { kind: WIRE_KINDS.indexOf(right.kind) as WireRight['kind'], port: right.portId };
}

function fromWireRight(right: WireRight): RightInTransit {
  const kind = WIRE_KINDS[right.kind];
  return kind === 'dead' ? { kind } : { kind, portId: right.port as PortId };
}

/** The ring form of a message, or null when it carries memory (which only postMessage can share). */
export function toWire(kmsg: KMsg): WireKmsg | null {
  if (kmsg.ool.length > 0) return null;
  return {
    dest: kmsg.dest, destType: kmsg.sendOnce ? MACH_MSG_TYPE_PORT_SEND_ONCE : MACH_MSG_TYPE_PORT_SEND,
    bits: 0, id: kmsg.id, sender: kmsg.sender, seq: kmsg.seq,
    reply: kmsg.reply === null ? null : toWireRight(kmsg.reply),
    rights: kmsg.rights.map(toWireRight), body: kmsg.body,
  };
}

export function fromWire(wire: WireKmsg): KMsg {
  return {
    dest: wire.dest as PortId, sendOnce: wire.destType === MACH_MSG_TYPE_PORT_SEND_ONCE,
    reply: wire.reply === null ? null : fromWireRight(wire.reply), id: wire.id, body: wire.body,
    rights: wire.rights.map(fromWireRight), ool: [], sender: wire.sender as PortId | 0, seq: wire.seq,
  };
}
