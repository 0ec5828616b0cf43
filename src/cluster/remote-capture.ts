/**
 * The parent's process's half of a fork across processes (remote-task.ts): the child's image,
 * taken from a snapshot task so the parent's own map and space are not touched.
 */
import {
  EXC_MASK_ALL, KERN_NODE_DOWN, KERN_PROTECTION_FAILURE, KERN_SUCCESS, MACH_MSG_TYPE_MOVE_SEND, MACH_PORT_DEAD, MACH_PORT_NULL,
  TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT, VM_INHERIT_SHARE,
} from '../shared/constants.js';
import type { ForkMode, RegionInfo } from '../shared/protocol.js';
import type { NodeId, TaskId } from '../shared/types.js';
import type { LocalKernel } from './link.js';
import type { RightTranslator } from './remote-build.js';
import type { WireRegion, WireRight, WireTaskImage } from './wire.js';

/** The special ports a child inherits across processes (MACH.md §4: not the host port, which is its node's). */
export const CROSS_SPECIALS = [TASK_BOOTSTRAP_PORT, TASK_EXCEPTION_PORT, TASK_SAMPLE_PORT] as const;

/** A capture: the snapshot (the holder of what the child shares, if `shared`) and the image less its capture number. */
export interface Captured {
  readonly kr: number;
  readonly snapshot?: TaskId;
  readonly shared?: boolean;
  readonly teleported?: TaskId;
  readonly image?: Omit<WireTaskImage, 'capture' | 'holder'>;
}

/**
 * In the parent's process: a snapshot task forked from the parent on its own node in one
 * step ('create': COPY regions copied then, SHARE shared, NONE absent; 'clone' for clone and
 * teleport: everything shared). Copied regions are read from it and dropped; what stays is
 * what the child shares, and the snapshot keeps it alive as the holder. The snapshot also
 * inherited the parent's ports, so they are taken from it: the parent's space is not touched.
 * Once `cancelled`, the next step undoes what was done and answers KERN_NODE_DOWN.
 */
export async function captureImage(k: LocalKernel, rights: RightTranslator, node: NodeId, task: TaskId, mode: ForkMode,
  inheritMemory: boolean, cancelled: () => boolean): Promise<Captured> {
  const info = await k.request(node, 'taskInfo', task);
  if (info.info === undefined) return { kr: info.kr };
  if (cancelled()) return { kr: KERN_NODE_DOWN };
  let teleported: TaskId | undefined;
  // Unshared memory of a teleport's parent may simply be copied: no one else can see it. Its
  // threads are stopped first, so what is copied is what the child gets.
  let sharedByOthers: RegionInfo[] = [];
  if (mode === 'teleport') {
    const suspended = await k.request(node, 'taskSuspend', task);
    if (suspended.kr !== KERN_SUCCESS) return suspended;
    teleported = task;
    sharedByOthers = (await k.request(node, 'vmRegions', task)).regions?.filter((region) => region.shared) ?? [];
  }
  const forked = await k.request(node, 'taskFork', task, mode === 'create' ? 'create' : 'clone', inheritMemory, node, null);
  if (forked.child === undefined) {
    if (teleported !== undefined) await k.request(node, 'taskResume', teleported);
    return { kr: forked.kr };
  }
  const snapshot = forked.child;
  const undo = async (kr: number): Promise<Captured> => {
    await k.request(node, 'taskTerminate', snapshot);
    if (teleported !== undefined) await k.request(node, 'taskResume', teleported);
    return { kr };
  };
  if (cancelled()) return undo(KERN_NODE_DOWN);
  const drawn = await draw(k, node, snapshot, mode, sharedByOthers);
  if (drawn.regions === undefined) return undo(drawn.kr);
  const { regions } = drawn;
  const shared = drawn.shared === true;
  const ports = await exportPorts(k, rights, node, snapshot);
  if (cancelled()) return undo(KERN_NODE_DOWN);
  return {
    kr: KERN_SUCCESS, snapshot, shared, ...(teleported === undefined ? {} : { teleported }),
    image: { token: info.info.securityToken, regions, ...ports },
  };
}

/**
 * The snapshot's regions as the child gets them: those it shares stay mapped there (the
 * holder, its protection raised to the maximum: the child's process checks the child's own);
 * the others are read out and unmapped. A region whose maximum protection has no read goes as
 * zeros: nobody can ever read it. Any other failure (a node down) fails the capture.
 */
async function draw(k: LocalKernel, node: NodeId, snapshot: TaskId, mode: ForkMode, sharedByOthers: readonly RegionInfo[]):
  Promise<{ kr: number; regions?: WireRegion[]; shared?: boolean }> {
  const listed = await k.request(node, 'vmRegions', snapshot);
  if (listed.regions === undefined) return { kr: listed.kr };
  const regions: WireRegion[] = [];
  let shared = false;
  for (const region of listed.regions) {
    const keep = mode === 'clone' || (mode === 'create' && region.inheritance === VM_INHERIT_SHARE) ||
      (mode === 'teleport' && sharedByOthers.some((other) => other.address <= region.address &&
        region.address < other.address + other.size));
    const raised = await k.request(node, 'vmProtect', snapshot, region.address, region.size, false, region.maxProtection);
    if (raised.kr !== KERN_SUCCESS) return raised;
    const attributes = {
      address: region.address, size: region.size, protection: region.protection,
      maxProtection: region.maxProtection, inheritance: region.inheritance,
    };
    if (keep) {
      shared = true;
      regions.push({ ...attributes, shared: true });
      continue;
    }
    const read = await k.request(node, 'vmRead', snapshot, region.address, region.size);
    if (read.data === undefined && read.kr !== KERN_PROTECTION_FAILURE) return { kr: read.kr };
    regions.push(read.data === undefined ? attributes : { ...attributes, data: read.data });
    const unmapped = await k.request(node, 'vmDeallocate', snapshot, region.address, region.size);
    if (unmapped.kr !== KERN_SUCCESS) return unmapped;
  }
  return { kr: KERN_SUCCESS, regions, shared };
}

/** The snapshot's inherited ports as wire rights, moved out of its space. */
async function exportPorts(k: LocalKernel, rights: RightTranslator, node: NodeId, snapshot: TaskId):
  Promise<Pick<WireTaskImage, 'special' | 'registered' | 'exceptions'>> {
  const take = async (name: number): Promise<WireRight> => {
    if (name === MACH_PORT_NULL || name === MACH_PORT_DEAD) return { kind: 'dead' };
    const extracted = await k.request(node, 'portExtractRight', snapshot, name, MACH_MSG_TYPE_MOVE_SEND);
    return extracted.right === undefined ? { kind: 'dead' } : rights.exportRight(extracted.right);
  };
  const special: [number, WireRight][] = [];
  for (const which of CROSS_SPECIALS) {
    special.push([which, await take((await k.request(node, 'taskGetSpecialPort', snapshot, which)).name)]);
  }
  const registered: WireRight[] = [];
  for (const name of (await k.request(node, 'portsLookup', snapshot)).names ?? []) registered.push(await take(name));
  const exceptions: WireTaskImage['exceptions'][number][] = [];
  const handlers = await k.request(node, 'taskGetExceptionPorts', snapshot, EXC_MASK_ALL);
  for (let index = 0; index < (handlers.old_exception_count ?? 0); index++) {
    exceptions.push({
      mask: handlers.old_exception_masks[index]!, right: await take(handlers.old_exception_ports[index]!),
      behavior: handlers.old_behaviors[index]!, flavor: handlers.old_flavors[index]!,
    });
  }
  return { special, registered, exceptions };
}
