/**
 * The kernel's receiving side (Mach's `ipc_kobject`): ports whose messages the kernel itself
 * consumes instead of a task. One is the reply port of an RPC the kernel makes
 * (exception_raise): the request carries a send-once right to it, and the one message that
 * comes back (the handler's reply, or MACH_NOTIFY_SEND_ONCE when the right was destroyed
 * unused) is taken off its queue here. And the task and thread kernel ports: a message that
 * reaches one on its node is served by the routine the facade calls (shared/kobject-wire.ts has
 * the ids and layout) and answered on its send-once reply right, as MIG's server would.
 */
import type { KMsg, RightInTransit } from '../../shared/message.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import { PortKind } from '../ipc/port-table.js';
import { KobjectCall, MIG_BAD_ID, kobjectArgument, kobjectReply } from '../../shared/kobject-wire.js';
import { KernReturn } from '../../shared/constants.js';
import type { NodeApi } from '../../shared/protocol.js';
import type { PortId, TaskId } from '../../shared/types.js';
import type { ThreadId } from '../../shared/thread-types.js';

/** A reply port the kernel receives on, with the send-once right to put in the request. */
export interface KernelReplyPort {
  readonly port: PortId;
  readonly reply: RightInTransit;
  /**
   * The one message that arrives (consumed: its rights and memory are destroyed), or undefined
   * when `abort` fires first or the port dies. The port is destroyed either way.
   */
  receive(abort: AbortSignal): Promise<{ id: number; body: Uint8Array } | undefined>;
}

/** A new kernel reply port on this node; undefined when the port table is full. */
export function kernelReplyPort(ipc: NodeIpc): KernelReplyPort | undefined {
  const port = ipc.createPort(PortKind.KERNEL_REPLY);
  if (port === undefined) return undefined;
  ipc.table.sendOnceMade(port);
  return {
    port,
    reply: { kind: 'send-once', portId: port },
    async receive(abort) {
      const local = ipc.local(port);
      if (local === undefined) return undefined;
      let destroyed = false;
      const destroy = (): void => {
        if (!destroyed) ipc.destroyPort(port);
        destroyed = true;
      };
      let onAbort = (): void => {};
      const aborted = new Promise<undefined>((resolve) => {
        // Destroyed in the abort itself, not a microtask later: whoever ended the wait (thread_terminate)
        // answers after this, so a late reply must already find the port dead.
        onAbort = () => { destroy(); resolve(undefined); };
        abort.addEventListener('abort', onAbort, { once: true });
      });
      try {
        const result = abort.aborted ? undefined : await Promise.race([local.queue.receive(), aborted]);
        const kmsg: KMsg | undefined = result?.msg;
        if (kmsg === undefined) return undefined;
        ipc.dequeued(kmsg, { destroy: true });
        return destroyed ? undefined : { id: kmsg.id, body: kmsg.body };
      } finally {
        abort.removeEventListener('abort', onAbort);
        destroy();
      }
    },
  };
}

type KobjectRoutines = Pick<NodeApi, 'taskTerminate' | 'taskThreads' | 'taskInfo' | 'taskSuspend' | 'taskResume' |
  'threadTerminate' | 'threadGetState' | 'threadSuspend' | 'threadResume' | 'threadAbort' | 'threadInfo'>;

/** The routine's return code and out-values (undefined: none). */
type Served = { kr: number; out?: unknown };

function serveTask(api: KobjectRoutines, task: TaskId, id: number): Served {
  switch (id) {
    case KobjectCall.task_terminate: return { kr: api.taskTerminate(task).kr };
    case KobjectCall.task_suspend: return api.taskSuspend(task);
    case KobjectCall.task_resume: return api.taskResume(task);
    case KobjectCall.task_info: { const { kr, info } = api.taskInfo(task); return { kr, out: info }; }
    // Thread ids, not rights: a reply carries no port rights yet (MIG's act_list would).
    case KobjectCall.task_threads: {
      const { kr, threads } = api.taskThreads(task);
      return { kr, out: threads?.map((ref) => ref.thread) };
    }
    default: return { kr: MIG_BAD_ID };
  }
}

function serveThread(api: KobjectRoutines, thread: ThreadId, id: number, body: Uint8Array): Served {
  const flavor = kobjectArgument(body, 0);
  switch (id) {
    case KobjectCall.thread_terminate: return api.threadTerminate(thread);
    case KobjectCall.thread_suspend: return api.threadSuspend(thread);
    case KobjectCall.thread_resume: return api.threadResume(thread);
    case KobjectCall.thread_abort: return api.threadAbort(thread);
    case KobjectCall.thread_info: {
      if (flavor === undefined) return { kr: KernReturn.KERN_INVALID_ARGUMENT };
      const { kr, info } = api.threadInfo(thread, flavor);
      return { kr, out: info };
    }
    case KobjectCall.thread_get_state: {
      if (flavor === undefined) return { kr: KernReturn.KERN_INVALID_ARGUMENT };
      const { kr, state } = api.threadGetState(thread, flavor);
      return { kr, out: state };
    }
    default: return { kr: MIG_BAD_ID };
  }
}

/**
 * Serves a message that reached a task's or thread's kernel port on this node (NodeIpc.arrive).
 * The request is consumed (its other rights and memory destroyed); the reply goes only to a
 * send-once reply right, as MIG's servers answer; a request with none, or with a send right
 * there, is served and answered with nothing (a send right is released).
 */
export function serveKobject(ipc: NodeIpc, api: KobjectRoutines, kmsg: KMsg): void {
  const kind = ipc.table.kind(kmsg.dest);
  const object = ipc.table.kobjectOf(kmsg.dest, kind);
  const replyTo = kmsg.reply?.kind === 'send-once' ? kmsg.reply : null;
  ipc.dequeued(replyTo === null ? kmsg : { ...kmsg, reply: null }, { destroy: true });
  let served: Served;
  if (object === undefined) served = { kr: KernReturn.KERN_INVALID_ARGUMENT };
  else if (kind === PortKind.TASK) served = serveTask(api, object as TaskId, kmsg.id);
  else served = serveThread(api, object as ThreadId, kmsg.id, kmsg.body);
  if (replyTo === null) return;
  const reply = kobjectReply(kmsg.id, served.kr, served.kr === KernReturn.KERN_SUCCESS ? served.out : undefined);
  ipc.route({ dest: replyTo.portId, sendOnce: true, reply: null, ...reply, rights: [], ool: [], sender: 0, seq: 0 });
}
