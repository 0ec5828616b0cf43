/**
 * Branded handles used at every boundary, and the sanitize steps that turn a user's raw numbers
 * into them (xnu's `_ut` types): kernel code only ever sees sanitized values.
 */
export type NodeId = number & { readonly __brand: 'NodeId' };
export type TaskId = number & { readonly __brand: 'TaskId' };
export type VmAddress = number;
export type VmSize = number;

/** A task id carries its node so any party can route a call without a directory. */
export const MAX_NODES = 1024;

export function makeTaskId(node: NodeId, sequence: number): TaskId {
  return (sequence * MAX_NODES + node) as TaskId;
}

export function taskIdNode(id: TaskId): NodeId {
  return (id % MAX_NODES) as NodeId;
}

/** security_token_t: two 32-bit words, inherited by every child task. */
export type SecurityToken = readonly [number, number];

export function isSecurityToken(value: unknown): value is SecurityToken {
  return Array.isArray(value) && value.length === 2 &&
    value.every((word) => Number.isInteger(word) && word >= 0 && word <= 0xffffffff);
}

/** A non-negative safe integer: the only shape an address or size may take. */
export function isVmQuantity(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** A task-local port name (`mach_port_name_t`): `(index << 8) | generation`, 32 bits unsigned. */
export type PortName = number & { readonly __brand: 'PortName' };

/** A port's (or port set's) global identity, issued by `PortOps.createPort`/`createPortSet`. */
export type PortId = number & { readonly __brand: 'PortId' };

/** A memory object on the wire: its home pager, its slot and generation there, and the memory itself. */
export interface MemoryObjectRef {
  readonly home: NodeId;
  readonly slot: number;
  readonly generation: number;
  readonly sab: SharedArrayBuffer;
}

/** The part of a memory object a home pager needs to free it. */
export interface MemoryObjectName {
  readonly home: NodeId;
  readonly slot: number;
}
