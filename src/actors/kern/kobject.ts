/**
 * The kernel's receiving side (Mach's `ipc_kobject`): ports whose messages the kernel itself
 * consumes instead of a task. For now that is the reply port of an RPC the kernel makes
 * (exception_raise): the request carries a send-once right to it, and the one message that
 * comes back (the handler's reply, or MACH_NOTIFY_SEND_ONCE when the right was destroyed
 * unused) is taken off its queue here. Task and thread calls sent as messages to task and
 * thread kernel ports (MIG's mach subsystem) are not served yet: a send to those ports answers
 * MACH_SEND_INVALID_DEST (mach-msg.ts).
 */
import type { KMsg, RightInTransit } from '../../shared/message.js';
import type { PortId } from '../../shared/types.js';
import type { NodeIpc } from '../ipc/ipc-node.js';
import { PortKind } from '../ipc/port-table.js';

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
      let onAbort = (): void => {};
      const aborted = new Promise<undefined>((resolve) => {
        onAbort = () => resolve(undefined);
        abort.addEventListener('abort', onAbort, { once: true });
      });
      try {
        const result = abort.aborted ? undefined : await Promise.race([local.queue.receive(), aborted]);
        const kmsg: KMsg | undefined = result?.msg;
        if (kmsg === undefined) return undefined;
        ipc.dequeued(kmsg, { destroy: true });
        return { id: kmsg.id, body: kmsg.body };
      } finally {
        abort.removeEventListener('abort', onAbort);
        ipc.destroyPort(port);
      }
    },
  };
}
