/**
 * Per-type exception ports of a task or a thread (OSF MK and xnu's `exc_actions`): for each
 * exception type a send right, a behavior and a state flavor. GNU Mach keeps one exception
 * port instead (TASK_EXCEPTION_PORT); norma follows OSF/xnu and consults GNU's special port
 * only as the task's last handler, for a type with no per-type task entry (kern/exception.ts).
 */
import {
  EXC_MASK_ALL, EXC_RPC_ALERT, EXCEPTION_DEFAULT, EXCEPTION_STATE, EXCEPTION_STATE_IDENTITY,
  KERN_INVALID_ARGUMENT, KERN_SUCCESS, MACH_MSG_TYPE_COPY_SEND, MACH_PORT_DEAD, MACH_PORT_NULL,
} from '../../shared/constants.js';
import type { ExceptionEntry, ExceptionPortsReply } from '../../shared/protocol.js';
import { NORMA_THREAD_STATE_JS } from '../../shared/thread-types.js';
import type { PortId, PortName } from '../../shared/types.js';
import type { NodeIpc } from './ipc-node.js';
import { copyoutOrDestroy, type MessageTask } from './mach-msg.js';

type ExceptionPortsOut = ExceptionPortsReply;

const BEHAVIORS: ReadonlySet<number> = new Set([EXCEPTION_DEFAULT, EXCEPTION_STATE, EXCEPTION_STATE_IDENTITY]);

export class ExceptionPorts {
  readonly #ipc: NodeIpc;
  readonly #task: MessageTask;
  /** Indexed by exception type (1..EXC_RPC_ALERT). */
  readonly #actions: (ExceptionEntry | undefined)[] = [];

  /** `inherited`: a child's copy of its parent's entries, each a send right held by no node. */
  constructor(ipc: NodeIpc, task: MessageTask, inherited: readonly (ExceptionEntry | null)[] = []) {
    this.#ipc = ipc;
    this.#task = task;
    inherited.forEach((entry, type) => {
      if (entry == null) return;
      this.#actions[type] = entry;
      ipc.table.sendRightsHeld(entry.port, 1);
    });
  }

  /** The handler of exception `type`, if one is set. */
  lookup(type: number): ExceptionEntry | undefined { return this.#actions[type]; }

  /**
   * task_set_exception_ports / thread_set_exception_ports: every type in `mask` gets a copy of
   * the send right `name` (MACH_PORT_NULL clears them), `behavior` and `flavor`.
   * Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT for a mask outside EXC_MASK_ALL, an unknown
   * behavior, or a state behavior with a flavor other than NORMA_THREAD_STATE_JS;
   * KERN_INVALID_NAME / KERN_INVALID_RIGHT when `name` holds no send right. A refusal changes nothing.
   */
  set(mask: number, name: number, behavior: number, flavor: number): { kr: number } {
    const bad = this.#invalid(mask, behavior, flavor);
    if (bad !== undefined) return { kr: bad };
    let port: PortId | null = null;
    if (name !== MACH_PORT_NULL) {
      this.#task.refresh(name);
      const { kr } = this.#task.rights.copyinCheck(name as PortName, MACH_MSG_TYPE_COPY_SEND);
      if (kr !== KERN_SUCCESS) return { kr };
      const { right } = this.#task.rights.copyin(name as PortName, MACH_MSG_TYPE_COPY_SEND);
      port = right?.kind === 'send' ? right.portId : null;
    }
    for (let type = 1; type <= EXC_RPC_ALERT; type++) {
      if ((mask & (1 << type)) === 0) continue;
      const previous = this.#actions[type];
      if (port !== null) this.#ipc.table.addSendRight(port);
      this.#actions[type] = port === null ? undefined : { port, behavior, flavor };
      if (previous !== undefined) this.#ipc.notices.releaseSend(previous.port);
    }
    // copyin took one right for the loop's copies to copy from.
    if (port !== null) this.#ipc.notices.releaseSend(port);
    return { kr: KERN_SUCCESS };
  }

  /**
   * task_get_exception_ports / thread_get_exception_ports: the handlers of the types in `mask`,
   * types with the same port, behavior and flavor grouped under one mask (as xnu does); each
   * port a send right named in the task's space. Returns KERN_SUCCESS; KERN_INVALID_ARGUMENT
   * for a mask outside EXC_MASK_ALL.
   */
  get(mask: number): ExceptionPortsOut {
    if (!validMask(mask)) return { kr: KERN_INVALID_ARGUMENT, ...empty(), old_exception_count: 0 };
    const groups: { mask: number; entry: ExceptionEntry | undefined }[] = [];
    for (let type = 1; type <= EXC_RPC_ALERT; type++) {
      if ((mask & (1 << type)) === 0) continue;
      const entry = this.#actions[type];
      const same = groups.find((group) => group.entry?.port === entry?.port && group.entry?.behavior === entry?.behavior &&
        group.entry?.flavor === entry?.flavor);
      if (same !== undefined) same.mask |= 1 << type;
      else groups.push({ mask: 1 << type, entry });
    }
    const out = empty();
    for (const { mask: groupMask, entry } of groups) {
      out.old_exception_masks.push(groupMask);
      out.old_exception_ports.push(this.#name(entry?.port));
      out.old_behaviors.push(entry?.behavior ?? 0);
      out.old_flavors.push(entry?.flavor ?? 0);
    }
    return { kr: KERN_SUCCESS, ...out, old_exception_count: out.old_exception_masks.length };
  }

  /** task_swap_exception_ports / thread_swap_exception_ports: get's answer from before, then set. */
  swap(mask: number, name: number, behavior: number, flavor: number): ExceptionPortsOut {
    const bad = this.#invalid(mask, behavior, flavor) ?? this.#badName(name);
    if (bad !== undefined) return { kr: bad, ...empty(), old_exception_count: 0 };
    const old = this.get(mask);
    this.set(mask, name, behavior, flavor);
    return old;
  }

  /** The entries a child inherits (all types copied: task_create.html), a send right each, held by no node. */
  inheritable(): (ExceptionEntry | null)[] {
    return this.#actions.map((entry) => {
      if (entry === undefined || !this.#ipc.table.isAlive(entry.port)) return null;
      this.#ipc.table.addSendRight(entry.port, false);
      return entry;
    });
  }

  /** The task or thread ends: its exception rights go. */
  release(): void {
    for (const entry of this.#actions.splice(0)) if (entry !== undefined) this.#ipc.notices.releaseSend(entry.port);
  }

  #invalid(mask: number, behavior: number, flavor: number): number | undefined {
    if (!validMask(mask) || !BEHAVIORS.has(behavior)) return KERN_INVALID_ARGUMENT;
    if (behavior !== EXCEPTION_DEFAULT && flavor !== NORMA_THREAD_STATE_JS) return KERN_INVALID_ARGUMENT;
    return undefined;
  }

  #badName(name: number): number | undefined {
    if (name === MACH_PORT_NULL) return undefined;
    this.#task.refresh(name);
    const { kr } = this.#task.rights.copyinCheck(name as PortName, MACH_MSG_TYPE_COPY_SEND);
    return kr === KERN_SUCCESS ? undefined : kr;
  }

  #name(port: PortId | undefined): number {
    if (port === undefined) return MACH_PORT_NULL;
    if (!this.#ipc.table.isAlive(port)) return MACH_PORT_DEAD;
    this.#ipc.table.addSendRight(port);
    return copyoutOrDestroy(this.#ipc, this.#task.rights, { kind: 'send', portId: port });
  }
}

function validMask(mask: unknown): mask is number {
  return Number.isInteger(mask) && (mask as number) >= 0 && ((mask as number) & ~EXC_MASK_ALL) === 0;
}

function empty() {
  return { old_exception_masks: [] as number[], old_exception_ports: [] as number[], old_behaviors: [] as number[], old_flavors: [] as number[] };
}

/** Releases the rights of inherited entries never adopted (held by no node). */
export function releaseInheritedExceptions(ipc: NodeIpc, entries: readonly (ExceptionEntry | null)[] | undefined): void {
  for (const entry of entries ?? []) if (entry != null) ipc.notices.releaseSend(entry.port, false);
}
