/**
 * Serving a NodeCall (from the host, or from a peer operating on a task through its kernel
 * port): runs the routine of the node's NodeApi and answers with a NodeReturn, or a NodeFault for
 * a failure outside Mach's codes.
 */
import type { NodeKernel } from '../actors/kern/node-kernel.js';
import { thrownError, uncloneableReply } from '../actors/kern/task-code.js';
import type { NodeCall, NodeFault, NodeReturn } from '../shared/protocol.js';

export type Answer = (message: NodeReturn | NodeFault) => void;

/**
 * Runs `call` on `node` and answers it through `answer`. A synchronous result `divert` takes
 * (a fork image bound for another node: ForkHandoff.forward) is not answered here.
 */
export function serveCall(node: NodeKernel, { id, method, args }: NodeCall, answer: Answer,
  divert?: (result: unknown) => boolean): void {
  let result: unknown;
  try {
    const routine = node[method] as ((...routineArgs: unknown[]) => unknown) | undefined;
    if (typeof routine !== 'function') throw new TypeError(`no routine ${String(method)}`);
    result = routine.apply(node, args as unknown[]);
  } catch (error) {
    answer({ op: 'fault', id, error: thrownError(error) });
    return;
  }
  if (divert?.(result) === true) return;
  // Most routines are synchronous: answer them without a trip through the microtask queue.
  if (result instanceof Promise) {
    result.then((value) => deliver(answer, id, method, value),
      (error) => answer({ op: 'fault', id, error: thrownError(error) }));
  } else {
    deliver(answer, id, method, result);
  }
}

/**
 * Answers a call with its result. A result structured clone refuses (task code returned a
 * function, a symbol, an object holding one) makes postMessage throw here, which would kill the
 * node and every task on it: that call fails with KERN_FAILURE naming the cause instead.
 */
function deliver(answer: Answer, id: number, method: string, result: unknown): void {
  try {
    answer({ op: 'return', id, result });
  } catch (error) {
    answer({ op: 'return', id, result: uncloneableReply(method, result, error) });
  }
}
