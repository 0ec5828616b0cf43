/**
 * Tasks (Mach `task`): an address space, a security token, the ledgers it draws on, a suspend
 * count, and a lifecycle. A task has no threads; code run in it (Node.taskExecute) waits while
 * the task is suspended, as a thread of a suspended task would.
 */
import { KERN_FAILURE, KERN_SUCCESS } from '../../shared/constants.js';
import type { TaskLedgers, TaskBasicInfo } from '../../shared/protocol.js';
import type { NodeId, SecurityToken, TaskId } from '../../shared/types.js';
import { Ledger } from './ledger.js';
import type { MemoryObject } from '../vm/memory-object.js';
import type { TaskIpc } from '../ipc/space.js';
import type { VmMap } from '../vm/vm-map.js';
import { globalNode } from './node-base.js';

export type TaskState = 'active' | 'terminated';

export class TaskActor {
  readonly id: TaskId;
  readonly node: NodeId;
  readonly map: VmMap;
  readonly ledgers: TaskLedgers;
  /** The paged-space ledger: what the task's memory objects are charged to. */
  readonly pagedLedger: Ledger;
  /** The task's port name space and special ports. */
  readonly ipc: TaskIpc;
  #token: SecurityToken;
  #state: TaskState = 'active';
  #suspendCount = 0;
  #resumeWaiters: Array<(runnable: boolean) => void> = [];

  constructor(id: TaskId, node: NodeId, map: VmMap, token: SecurityToken, ledgers: TaskLedgers,
    makeIpc: (task: TaskActor) => TaskIpc) {
    this.id = id;
    this.node = node;
    this.map = map;
    this.#token = token;
    this.ledgers = ledgers;
    this.pagedLedger = new Ledger(ledgers[1]);
    this.ipc = makeIpc(this);
  }

  get state(): TaskState { return this.#state; }
  get token(): SecurityToken { return this.#token; }
  get suspendCount(): number { return this.#suspendCount; }

  setToken(token: SecurityToken): void { this.#token = [token[0], token[1]]; }

  /** task_suspend: raises the suspend count. Returns KERN_SUCCESS. */
  suspend(): number {
    this.#suspendCount++;
    return KERN_SUCCESS;
  }

  /**
   * task_resume: lowers the suspend count; at zero, code waiting to run in the task proceeds.
   * Returns KERN_SUCCESS; KERN_FAILURE when the count is already zero (nothing changes).
   */
  resume(): number {
    if (this.#suspendCount === 0) return KERN_FAILURE;
    if (--this.#suspendCount === 0) this.#wake(true);
    return KERN_SUCCESS;
  }

  /** Resolves true once the task may run, false if it is terminated first. */
  whenRunnable(): Promise<boolean> {
    if (this.#state === 'terminated') return Promise.resolve(false);
    if (this.#suspendCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => this.#resumeWaiters.push(resolve));
  }

  /**
   * task_terminate's task half: destroys its rights (its receive rights' ports die), empties
   * the map and returns the objects it referenced.
   */
  terminate(): MemoryObject[] {
    this.#state = 'terminated';
    this.#wake(false);
    this.ipc.terminate();
    return this.map.clear();
  }

  info(): TaskBasicInfo {
    return {
      node: globalNode(this.node),
      suspendCount: this.#suspendCount,
      virtualSize: this.map.virtualSize,
      regionCount: this.map.regionCount,
      threadCount: 0,
      securityToken: this.#token,
    };
  }

  #wake(runnable: boolean): void {
    const waiters = this.#resumeWaiters;
    this.#resumeWaiters = [];
    for (const waiter of waiters) waiter(runnable);
  }
}
