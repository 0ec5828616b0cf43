/**
 * Message and right shapes both sides use (Mach `mach_msg_header_t`, descriptors, `ipc_kmsg`):
 * the form a task writes and reads, with names in its own space, and the kernel's form in
 * between, with rights in transit. Types only: the kernel's helpers live in actors/ipc/message.ts.
 */
import type { PortId, MemoryObjectRef } from './types.js';

/** What a right in transit is. A dead right carries no port: it arrives as MACH_PORT_DEAD. */
export type RightKind = 'receive' | 'send' | 'send-once' | 'dead';

/**
 * A right that has left a name space (copied in from a message disposition) and not yet been
 * copied out into another one. Whoever holds the value owns the right: it must either be copied
 * out or handed to `destroyRightInTransit`, or the port's right counts go wrong.
 */
export type RightInTransit =
  | { readonly kind: 'receive' | 'send' | 'send-once'; readonly portId: PortId }
  | { readonly kind: 'dead' };

/** A port right a message carries, by the disposition the sender applies to its name. */
export interface PortDescriptor {
  readonly name: number;
  readonly disposition: number;
}

/** Out-of-line memory: `size` bytes at `address` of the sender, shared or copied. */
export interface OolDescriptor {
  readonly address: number;
  readonly size: number;
  /** Map the sender's memory itself into the receiver (default: a private copy). */
  readonly share?: boolean;
  /** Deallocate the range from the sender once it is in the message. */
  readonly deallocate?: boolean;
}

/** A message as a task sends it (mach_msg with MACH_SEND_MSG). Names are in the sender's space. */
export interface MachMsgSend {
  /** msgh_remote_port: the destination. */
  readonly remotePort: number;
  readonly remoteDisposition: number;
  /** msgh_local_port: the reply right, or 0. */
  readonly localPort?: number;
  readonly localDisposition?: number;
  /** msgh_id. */
  readonly id?: number;
  /** Inline data. */
  readonly body?: Uint8Array;
  readonly ports?: readonly PortDescriptor[];
  readonly ool?: readonly OolDescriptor[];
}

/** A port right as received: its name in the receiver's space and its type. */
export interface ReceivedPort {
  readonly name: number;
  readonly type: number;
}

/** A message as a task receives it. Names are in the receiver's space. */
export interface MachMsgReceived {
  /** The reply right's name (MACH_PORT_NULL for none) and type. */
  readonly remotePort: number;
  readonly remoteType: number;
  /** The name of the receive right (or port set member) the message came through. */
  readonly localPort: number;
  readonly id: number;
  readonly seqno: number;
  readonly body: Uint8Array;
  readonly ports: readonly ReceivedPort[];
  readonly ool: readonly { readonly address: number; readonly size: number }[];
}

/** Out-of-line memory in flight: a reference on `object`, adopted by the receiver's map. */
export interface OolRegion {
  readonly object: MemoryObjectRef;
  readonly offset: number;
  readonly size: number;
}

/** The kernel's message (ipc_kmsg). Every right in it is owned by the message. */
export interface KMsg {
  readonly dest: PortId;
  /** Sent through a send-once right: ignores the queue limit, unordered. */
  readonly sendOnce: boolean;
  readonly reply: RightInTransit | null;
  readonly id: number;
  readonly body: Uint8Array;
  readonly rights: readonly RightInTransit[];
  readonly ool: readonly OolRegion[];
  /**
   * The sending task's kernel port (0 for the kernel), and the task's sequence number for
   * `dest`, from 1. A port, not a TaskId, so the receiving node can tell from the port table
   * whether the sender is still alive (ipc-node.ts prunes its order state by that).
   */
  readonly sender: PortId | 0;
  readonly seq: number;
}
