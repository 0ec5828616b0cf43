/**
 * The child's process's half of a fork across processes: the child made from this process's
 * bootstrap task (so it counts against this process's root ledgers: a ledger is a
 * SharedArrayBuffer of one process and cannot be charged from another), then its inherited
 * ports and its regions laid in at the parent's addresses with the parent's attributes.
 */
import {
  KERN_SUCCESS, MACH_MSG_TYPE_MOVE_SEND, MACH_PORT_NULL, VM_PROT_NONE,
} from '../shared/constants.js';
import type { RightInTransit } from '../shared/message.js';
import type { NodeId, TaskId } from '../shared/types.js';
import type { LocalKernel } from './link.js';
import type { WireRegion, WireRight, WireTaskImage } from './wire.js';

/** What forking across processes needs of the gateway (Gateway implements it). */
export interface RightTranslator {
  exportRight(right: RightInTransit): Promise<WireRight>;
  importRight(wire: WireRight): Promise<RightInTransit>;
}

/** Names the inherited rights pass through in the child's space on their way to its slots. */
const SCRATCH_NAME = 0x7f000001;
const NAME_STEP = 0x100;

/**
 * The child-to-be on `node`: an empty task made from this process's bootstrap task, reserved
 * before the image is captured so a node that goes down meanwhile is seen (remote-task.ts).
 */
export async function reserveChild(kernel: LocalKernel, node: NodeId): Promise<{ kr: number; child?: TaskId }> {
  const made = await kernel.fork(kernel.bootstrapTask, 'create', false, node, null);
  return made.child === undefined ? { kr: made.kr } : { kr: made.kr, child: made.child.id };
}

/**
 * Lays `image` into the reserved `child` on `node`. On failure the child is terminated (taking
 * the rights inserted so far with it) and nothing is left behind.
 */
export async function fillChild(kernel: LocalKernel, rights: RightTranslator, node: NodeId, child: TaskId, image: WireTaskImage):
  Promise<{ kr: number; bytesCopied: number }> {
  let kr = (await kernel.request(node, 'taskSetSecurityToken', child, image.token)).kr;
  if (kr === KERN_SUCCESS) kr = await inheritPorts(kernel, rights, node, child, image);
  let bytesCopied = 0;
  for (const region of image.regions) {
    if (kr !== KERN_SUCCESS) break;
    kr = await layRegion(kernel, node, child, region);
    bytesCopied += region.data?.byteLength ?? 0;
  }
  if (kr !== KERN_SUCCESS) {
    await kernel.request(node, 'taskTerminate', child);
    return { kr, bytesCopied: 0 };
  }
  return { kr, bytesCopied };
}

/**
 * One region at its address: its bytes when copied; a placeholder with maximum protection
 * VM_PROT_NONE when shared (remote-memory.ts keeps the child's real attributes).
 */
export async function layRegion(kernel: LocalKernel, node: NodeId, child: TaskId, region: WireRegion): Promise<number> {
  const steps: (() => Promise<{ kr: number }>)[] = [
    () => kernel.request(node, 'vmAllocate', child, region.address, region.size, false),
    ...(region.data === undefined ? [] : [() => kernel.request(node, 'vmWrite', child, region.address, region.data!)]),
    () => kernel.request(node, 'vmInherit', child, region.address, region.size, region.inheritance),
    () => kernel.request(node, 'vmProtect', child, region.address, region.size, true,
      region.shared ? VM_PROT_NONE : region.maxProtection),
    ...(region.shared ? [] : [() => kernel.request(node, 'vmProtect', child, region.address, region.size, false, region.protection)]),
  ];
  for (const step of steps) {
    const { kr } = await step();
    if (kr !== KERN_SUCCESS) return kr;
  }
  return KERN_SUCCESS;
}

/**
 * The child's special, registered and exception ports from the wire rights: each imported,
 * inserted under a scratch name, copied into its slot, and the scratch name dropped. A dead
 * right leaves the slot empty, as a dead port does in one process.
 */
async function inheritPorts(kernel: LocalKernel, rights: RightTranslator, node: NodeId, child: TaskId,
  image: WireTaskImage): Promise<number> {
  const named = new Map<number, number>();
  const inserted: number[] = [];
  let next = SCRATCH_NAME;
  let failed: number = KERN_SUCCESS;
  /** A scratch name holding the right, or MACH_PORT_NULL for a dead one. */
  const insert = async (wire: WireRight): Promise<number> => {
    const right: RightInTransit = await rights.importRight(wire);
    if (right.kind === 'dead') return MACH_PORT_NULL;
    // The same port twice (bootstrap also registered) joins its first name, as a second uref.
    const name = named.get(right.portId) ?? next;
    if (name === next) next += NAME_STEP;
    const { kr } = await kernel.request(node, 'portInsertRight', child, name, right, MACH_MSG_TYPE_MOVE_SEND);
    if (kr !== KERN_SUCCESS) {
      failed = kr;
      return MACH_PORT_NULL;
    }
    named.set(right.portId, name);
    inserted.push(name);
    return name;
  };
  const results: { kr: number }[] = [];
  for (const [which, wire] of image.special) {
    results.push(await kernel.request(node, 'taskSetSpecialPort', child, which, await insert(wire)));
  }
  const registered: number[] = [];
  for (const wire of image.registered) registered.push(await insert(wire));
  results.push(await kernel.request(node, 'portsRegister', child, registered));
  for (const handler of image.exceptions) {
    const name = await insert(handler.right);
    if (name === MACH_PORT_NULL) continue;
    results.push(await kernel.request(node, 'taskSetExceptionPorts', child, handler.mask, name, handler.behavior, handler.flavor));
  }
  for (const name of inserted) await kernel.request(node, 'portDeallocate', child, name);
  return failed !== KERN_SUCCESS ? failed : results.find((result) => result.kr !== KERN_SUCCESS)?.kr ?? KERN_SUCCESS;
}
