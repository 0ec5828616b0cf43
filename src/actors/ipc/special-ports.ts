/**
 * A task's special and registered ports (Mach's `itk_*` slots and mach_ports_register): send
 * rights the task keeps outside its name space, handed out as names on request and inherited
 * by its children.
 */
import {
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_PORT_DEAD, MACH_PORT_NULL,
  TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_HOST_PORT, TASK_KERNEL_PORT,
  TASK_PORT_REGISTER_MAX, TASK_SAMPLE_PORT,
} from '../../shared/constants.js';
import type { InheritedPorts } from '../../shared/protocol.js';
import type { PortId, PortName } from '../../shared/types.js';
import type { NodeIpc } from './ipc-node.js';
import { releaseInheritedExceptions } from './exception-ports.js';
import { copyoutOrDestroy, type MessageTask } from './mach-msg.js';

const INHERITED_SPECIALS = [TASK_BOOTSTRAP_PORT, TASK_HOST_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT];
const SETTABLE_SPECIALS = new Set([TASK_KERNEL_PORT, ...INHERITED_SPECIALS]);

export class SpecialPorts {
  readonly #ipc: NodeIpc;
  readonly #task: MessageTask;
  readonly #special = new Map<number, PortId>();
  #registered: (PortId | null)[] = [null, null, null];
  #kernelPortOverride: PortId | null = null;

  constructor(ipc: NodeIpc, task: MessageTask, inherited: InheritedPorts | null) {
    this.#ipc = ipc;
    this.#task = task;
    for (const [which, special] of inherited?.special ?? []) this.#special.set(which, special);
    if (inherited !== null) this.#registered = [...inherited.registered];
    // The inherited rights, held by no node on their way here (inheritable), are this node's now.
    for (const held of [...this.#special.values(), ...this.#registered]) if (held !== null) ipc.table.sendRightsHeld(held, 1);
  }

  /**
   * The ports a child of this task inherits, with a send right taken for it, held by no node
   * until the child's TaskIpc takes it (an image in flight survives its parent's node).
   */
  inheritable(): InheritedPorts {
    const take = (port: PortId | null | undefined) => {
      if (port == null || !this.#ipc.table.isAlive(port)) return null;
      this.#ipc.table.addSendRight(port, false);
      return port;
    };
    const special: [number, PortId][] = [];
    for (const which of INHERITED_SPECIALS) {
      const port = take(this.#special.get(which));
      if (port !== null) special.push([which, port]);
    }
    return { special, registered: this.#registered.map(take) };
  }

  /** The port in special slot `which`, if set. */
  port(which: number): PortId | undefined { return this.#special.get(which); }

  /** What copyin of `name` by `disposition` would give (PortRights.copyinCheck), `name` refreshed first. */
  #check(name: number, disposition: number) {
    this.#task.refresh(name);
    return this.#task.rights.copyinCheck(name as PortName, disposition);
  }

  /**
   * task_get_special_port: a send right to the special port `which`, named in this space
   * (MACH_PORT_NULL when none is set).
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown `which`.
   */
  get(which: number): { kr: number; name: number } {
    if (!SETTABLE_SPECIALS.has(which)) return { kr: KERN_INVALID_ARGUMENT, name: MACH_PORT_NULL };
    const port = which === TASK_KERNEL_PORT ? this.#kernelPortOverride ?? this.#task.taskPort : this.#special.get(which);
    return { kr: KERN_SUCCESS, name: this.#sendRightName(port) };
  }

  #sendRightName(port: PortId | null | undefined): number {
    if (port == null) return MACH_PORT_NULL;
    if (!this.#ipc.table.isAlive(port)) return MACH_PORT_DEAD;
    this.#ipc.table.addSendRight(port);
    return copyoutOrDestroy(this.#ipc, this.#task.rights, { kind: 'send', portId: port });
  }

  /**
   * task_set_special_port: `which` becomes a copy of the send right `name` (MACH_PORT_NULL
   * clears it). Setting TASK_KERNEL_PORT changes what get returns, not the port the kernel uses.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for an unknown `which`; KERN_INVALID_NAME /
   * KERN_INVALID_RIGHT when `name` holds no send right.
   */
  set(which: number, name: number): { kr: number } {
    if (!SETTABLE_SPECIALS.has(which)) return { kr: KERN_INVALID_ARGUMENT };
    const taken = this.#takeSendRights([name]);
    if (typeof taken === 'number') return { kr: taken };
    const port = taken[0]!;
    const previous = which === TASK_KERNEL_PORT ? this.#kernelPortOverride : this.#special.get(which) ?? null;
    if (which === TASK_KERNEL_PORT) this.#kernelPortOverride = port;
    else if (port === null) this.#special.delete(which);
    else this.#special.set(which, port);
    if (previous !== null) this.#ipc.notices.releaseSend(previous);
    return { kr: KERN_SUCCESS };
  }

  /** COPY_SEND of each name (MACH_PORT_NULL gives null), all checked before any is taken. */
  #takeSendRights(names: readonly number[]): number | (PortId | null)[] {
    for (const name of names) {
      if (name === MACH_PORT_NULL) continue;
      const { kr } = this.#check(name, MACH_MSG_TYPE_COPY_SEND);
      if (kr !== KERN_SUCCESS) return kr;
    }
    return names.map((name) => {
      if (name === MACH_PORT_NULL) return null;
      const { right } = this.#task.rights.copyin(name as PortName, MACH_MSG_TYPE_COPY_SEND);
      return right?.kind === 'send' ? right.portId : null;
    });
  }

  /**
   * mach_ports_register: up to TASK_PORT_REGISTER_MAX send rights children inherit.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for too many; KERN_INVALID_NAME /
   * KERN_INVALID_RIGHT for a name without a send right.
   */
  register(names: readonly number[]): { kr: number } {
    if (!Array.isArray(names) || names.length > TASK_PORT_REGISTER_MAX) return { kr: KERN_INVALID_ARGUMENT };
    const taken = this.#takeSendRights(names);
    if (typeof taken === 'number') return { kr: taken };
    const previous = this.#registered;
    this.#registered = [0, 1, 2].map((index) => taken[index] ?? null);
    for (const port of previous) if (port !== null) this.#ipc.notices.releaseSend(port);
    return { kr: KERN_SUCCESS };
  }

  /** mach_ports_lookup: the registered ports as send rights named in this space. */
  lookupRegistered(): { kr: number; names: number[] } {
    return { kr: KERN_SUCCESS, names: this.#registered.map((port) => this.#sendRightName(port)) };
  }

  /** The task dies: its special and registered rights are released. */
  release(): void {
    for (const port of [...this.#special.values(), ...this.#registered, this.#kernelPortOverride]) {
      if (port != null) this.#ipc.notices.releaseSend(port);
    }
    this.#special.clear();
    this.#registered = [null, null, null];
  }
}

/** Releases the send rights an unadopted child's inherited ports held (held by no node: inheritable). */
export function releaseInherited(ipc: NodeIpc, inherited: InheritedPorts): void {
  for (const [, port] of inherited.special) ipc.notices.releaseSend(port, false);
  for (const port of inherited.registered) if (port !== null) ipc.notices.releaseSend(port, false);
  releaseInheritedExceptions(ipc, inherited.exceptions);
}
