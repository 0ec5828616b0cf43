/**
 * Task creation under concurrency: many callers creating children of one parent while others
 * split its regions with vm_protect / vm_inherit. Each child must be built from the parent's map
 * as it stood at one instant (never a half-applied split); a teleport among the calls divides
 * them into those before it (served) and those after it (KERN_INVALID_ARGUMENT); no call hangs.
 */
import { assert, describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_RESOURCE_SHORTAGE, KERN_SUCCESS, VM_INHERIT_COPY, VM_INHERIT_NONE,
  VM_INHERIT_SHARE, VM_PROT_DEFAULT, VM_PROT_READ, krName, type RegionInfo, type Task,
} from 'norma-rt';
import { bootKernel } from './helpers.js';

type Mode = 'create' | 'clone';
type OpKind = 'protect' | 'copy' | 'none';
interface Op { readonly kind: OpKind; readonly start: number; readonly size: number }
interface Layout { address: number; size: number; protection: number; inheritance: number }

const RANGES = 12;
const CREATIONS = 20;

/**
 * The parent's layout once the ops in `flipped` are applied, in whatever order: each applied op
 * is its own region (its range was clipped out); each run of untouched ranges stays one region.
 * A 'create' child lacks the ranges flipped to VM_INHERIT_NONE.
 */
function expectedLayout(ops: readonly Op[], flipped: ReadonlySet<number>, mode: Mode): Layout[] {
  const layout: Layout[] = [];
  let run: Layout | undefined;
  ops.forEach((op, index) => {
    if (!flipped.has(index)) {
      if (run === undefined) {
        run = { address: op.start, size: op.size, protection: VM_PROT_DEFAULT, inheritance: VM_INHERIT_SHARE };
        layout.push(run);
      } else {
        run.size += op.size;
      }
      return;
    }
    run = undefined;
    if (op.kind === 'none' && mode === 'create') return;
    layout.push({
      address: op.start,
      size: op.size,
      protection: op.kind === 'protect' ? VM_PROT_READ : VM_PROT_DEFAULT,
      inheritance: op.kind === 'copy' ? VM_INHERIT_COPY : op.kind === 'none' ? VM_INHERIT_NONE : VM_INHERIT_SHARE,
    });
  });
  return layout;
}

/**
 * Which ops a child's map shows applied. Throws if some op's range is only partly applied (part
 * of it flipped, part not) or only partly present.
 */
function appliedOps(ops: readonly Op[], regions: readonly RegionInfo[], mode: Mode): Set<number> {
  const applied = new Set<number>();
  ops.forEach((op, index) => {
    const end = op.start + op.size;
    const inside = regions.filter((region) => region.address < end && region.address + region.size > op.start);
    const covered = inside.reduce((sum, region) =>
      sum + Math.min(end, region.address + region.size) - Math.max(op.start, region.address), 0);
    if (op.kind === 'none' && mode === 'create' && inside.length === 0) {
      applied.add(index);
      return;
    }
    if (covered !== op.size) throw new Error(`op ${index} (${op.kind}): range only partly present in the child`);
    const states = new Set(inside.map((region) => op.kind === 'protect'
      ? region.protection === VM_PROT_READ
      : region.inheritance === (op.kind === 'copy' ? VM_INHERIT_COPY : VM_INHERIT_NONE)));
    if (states.size !== 1) throw new Error(`op ${index} (${op.kind}): half applied in the child`);
    if (states.has(true)) applied.add(index);
  });
  return applied;
}

const strip = (regions: readonly RegionInfo[]): Layout[] =>
  regions.map(({ address, size, protection, inheritance }) => ({ address, size, protection, inheritance }));

describe('task creation under concurrency', () => {
  it('builds each of 20 concurrent task_create / norma_task_create / norma_task_clone children from one instant of a parent being split concurrently', async () => {
    const kernel = await bootKernel();
    const { mach } = kernel;
    const page = kernel.pageSize;
    const parent = await kernel.bootstrapTask.create();
    const size = RANGES * 2 * page;
    const base = await parent.allocate(size);
    await parent.inherit(base, size, VM_INHERIT_SHARE);
    const pattern = Uint8Array.from({ length: size }, (_, at) => (at * 7 + 3) % 251);
    await parent.write(base, pattern);
    const parentObject = (await parent.region(base)).object;

    const kinds: readonly OpKind[] = ['protect', 'copy', 'none'];
    const ops: Op[] = Array.from({ length: RANGES }, (_, index) =>
      ({ kind: kinds[index % 3]!, start: base + index * 2 * page, size: 2 * page }));
    // Each op flips one whole range, alternating faces.
    const runOp = async ({ kind, start, size: length }: Op, index: number): Promise<void> => {
      const viaMach = index % 2 === 0;
      if (kind === 'protect') {
        if (viaMach) expect(await mach.vm_protect(parent, start, length, false, VM_PROT_READ)).toBe(KERN_SUCCESS);
        else await parent.protect(start, length, VM_PROT_READ);
        return;
      }
      const inheritance = kind === 'copy' ? VM_INHERIT_COPY : VM_INHERIT_NONE;
      if (viaMach) expect(await mach.vm_inherit(parent, start, length, inheritance)).toBe(KERN_SUCCESS);
      else await parent.inherit(start, length, inheritance);
    };
    const creations: Array<() => Promise<{ child: Task; mode: Mode }>> = Array.from({ length: CREATIONS }, (_, k) => async () => {
      const fromMach = async (reply: Promise<{ kr: number; child_task?: Task }>) => {
        const { kr, child_task: child } = await reply;
        expect(kr).toBe(KERN_SUCCESS);
        assert(child !== undefined);
        return child;
      };
      switch (k % 6) {
        case 0: return { child: await parent.create(), mode: 'create' };
        case 1: return { child: await fromMach(mach.task_create(parent, null, 0, true)), mode: 'create' };
        case 2: return { child: await parent.createOn(1), mode: 'create' };
        case 3: return { child: await fromMach(mach.norma_task_create(parent, true, k % 2)), mode: 'create' };
        case 4: return { child: await parent.clone(1), mode: 'clone' };
        default: return { child: await fromMach(mach.norma_task_clone(parent, true, k % 2)), mode: 'clone' };
      }
    });

    // Interleave: creations and splitting ops, every one its own caller, all in flight at once.
    const schedule: Array<() => Promise<unknown>> = [];
    let nextOp = 0;
    creations.forEach((create, k) => {
      schedule.push(create);
      while (nextOp < ((k + 1) * RANGES) / CREATIONS) {
        const index = nextOp++;
        schedule.push(() => runOp(ops[index]!, index));
      }
    });
    const settled = await Promise.all(schedule.map((call) => call()));
    const children = settled.filter((result): result is { child: Task; mode: Mode } =>
      typeof result === 'object' && result !== null && 'child' in result);
    expect(children).toHaveLength(CREATIONS);

    const everything = new Set(ops.keys());
    expect(strip(await parent.regions())).toEqual(expectedLayout(ops, everything, 'clone'));

    const seen: Set<number>[] = [];
    for (const { child, mode } of children) {
      const regions = await child.regions();
      const applied = appliedOps(ops, regions, mode);
      // The whole map, boundaries included, is the parent's at the instant those ops had applied.
      expect(strip(regions)).toEqual(expectedLayout(ops, applied, mode));
      for (const region of regions) {
        const copied = mode === 'create' && region.inheritance === VM_INHERIT_COPY;
        expect(region.object === parentObject).toBe(!copied);
        const offset = region.address - base;
        const bytes = await child.read(region.address, region.size);
        expect(Buffer.compare(bytes, pattern.subarray(offset, offset + region.size))).toBe(0);
      }
      seen.push(applied);
    }
    // Instants are ordered: each child's applied set contains the smaller ones.
    seen.sort((a, b) => a.size - b.size);
    for (let index = 1; index < seen.length; index++) {
      for (const op of seen[index - 1]!) expect(seen[index]!.has(op)).toBe(true);
    }
    // The calls really interleaved: the children saw more than one state of the parent.
    expect(new Set(seen.map((applied) => applied.size)).size).toBeGreaterThan(1);
  });

  it('serves the calls issued before a concurrent norma_task_teleport and fails those after it with KERN_INVALID_ARGUMENT, none hanging', async () => {
    const kernel = await bootKernel();
    const { mach } = kernel;
    const page = kernel.pageSize;
    const parent = await kernel.bootstrapTask.create();
    const shared = await parent.allocate(page);
    await parent.inherit(shared, page, VM_INHERIT_SHARE);
    await parent.write(shared, new Uint8Array(page).fill(0x5c));
    const copied = await parent.allocate(page);

    const before = [
      () => parent.create(),
      () => mach.norma_task_create(parent, true, 1),
      () => parent.clone(1),
      () => mach.vm_read(parent, shared, 1),
      () => parent.protect(copied, page, VM_PROT_READ),
      () => mach.task_info(parent),
      () => parent.createOn(0),
    ];
    const teleport = () => mach.norma_task_teleport(parent, true, 1);
    const after = [
      () => parent.create(),
      () => mach.task_create(parent, null, 0, true),
      () => mach.norma_task_create(parent, true, 1),
      () => parent.clone(1),
      () => mach.vm_read(parent, shared, 1),
      () => parent.allocate(page),
      () => mach.vm_inherit(parent, shared, page, VM_INHERIT_NONE),
      () => parent.teleport(0),
      () => mach.norma_task_teleport(parent, true, 1),
      () => mach.task_terminate(parent),
    ];
    // Issued in this order, all in flight at once.
    const inFlight = [...before, teleport, ...after].map((call) => call());
    const outcomes = await Promise.allSettled(inFlight);

    const kr = (outcome: PromiseSettledResult<unknown>): number => {
      if (outcome.status === 'rejected') return (outcome.reason as { kr: number }).kr;
      const value = outcome.value;
      if (typeof value === 'number') return value;
      if (typeof value === 'object' && value !== null && 'kr' in value) return (value as { kr: number }).kr;
      return KERN_SUCCESS;
    };
    const codes = outcomes.map((outcome) => krName(kr(outcome)));
    expect(codes).toEqual([
      ...before.map(() => 'KERN_SUCCESS'),
      'KERN_SUCCESS',
      ...after.map(() => 'KERN_INVALID_ARGUMENT'),
    ]);
    for (const outcome of outcomes.slice(before.length + 1)) {
      if (outcome.status === 'rejected') expect(outcome.reason).toMatchObject({ kr: KERN_INVALID_ARGUMENT });
    }

    const moved = (outcomes[before.length] as PromiseFulfilledResult<{ child_task?: Task }>).value.child_task;
    assert(moved !== undefined);
    expect(moved.node).toBe(1);
    // The protect issued before the teleport reached the moved map; the earlier children share with it.
    expect(await moved.region(copied)).toMatchObject({ protection: VM_PROT_READ, inheritance: VM_INHERIT_COPY });
    const sibling = (outcomes[0] as PromiseFulfilledResult<Task>).value;
    const cloned = (outcomes[2] as PromiseFulfilledResult<Task>).value;
    expect((await sibling.region(shared)).object).toBe((await moved.region(shared)).object);
    expect((await cloned.region(copied)).object).toBe((await moved.region(copied)).object);
    await moved.write(shared, Uint8Array.of(0x01));
    expect((await sibling.read(shared, 1))[0]).toBe(0x01);
  });

  it('keeps the memory of a remote child alive when task_terminate of the parent races its creation', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const baseline = await kernel.pagerInfo();
    const parent = await kernel.bootstrapTask.create();
    const shared = await parent.allocate(2 * page);
    await parent.inherit(shared, 2 * page, VM_INHERIT_SHARE);
    await parent.write(shared, new Uint8Array(2 * page).fill(0x3c));
    const copied = await parent.allocate(page);
    await parent.write(copied, new Uint8Array(page).fill(0x4d));

    // Issued in this order: each creation captures the map before the terminate takes it away.
    const [created, cloned, terminated] = await Promise.all([
      parent.createOn(1), parent.clone(1), kernel.mach.task_terminate(parent),
    ]);
    expect(terminated).toBe(KERN_SUCCESS);
    expect(await created.read(shared, 2 * page)).toEqual(new Uint8Array(2 * page).fill(0x3c));
    expect(await created.read(copied, page)).toEqual(new Uint8Array(page).fill(0x4d));
    expect(await cloned.read(copied, page)).toEqual(new Uint8Array(page).fill(0x4d));
    expect((await created.region(shared)).object).toBe((await cloned.region(shared)).object);

    await created.terminate();
    await cloned.terminate();
    expect(await kernel.pagerInfo()).toEqual(baseline);
  });

  it('lets 40 concurrent COPY creations on two nodes draw on one ledger: exactly as many succeed as the limit allows', async () => {
    const kernel = await bootKernel();
    const page = kernel.pageSize;
    const [wired, paged] = [kernel.createLedger(Infinity), kernel.createLedger(7 * page)];
    const parents = await Promise.all([0, 1].map(async (node) => {
      const parent = await kernel.bootstrapTask.createOn(node);
      await parent.allocate(page);
      return parent;
    }));
    const baseline = await kernel.pagerInfo();

    const outcomes = await Promise.allSettled(Array.from({ length: 40 }, (_, k) =>
      parents[k % 2]!.create({ ledgers: [wired, paged] })));
    const made = outcomes.flatMap((outcome) => outcome.status === 'fulfilled' ? [outcome.value] : []);
    const refused = outcomes.flatMap((outcome) => outcome.status === 'rejected' ? [outcome.reason as unknown] : []);

    expect(made).toHaveLength(7);
    expect(refused).toHaveLength(33);
    for (const reason of refused) expect(reason).toMatchObject({ code: 'KERN_RESOURCE_SHORTAGE', kr: KERN_RESOURCE_SHORTAGE });
    expect(paged.balance).toBe(7 * page);
    const pagers = await kernel.pagerInfo();
    expect(pagers[0]!.objects + pagers[1]!.objects).toBe(baseline[0]!.objects + baseline[1]!.objects + 7);

    await Promise.all(made.map((child) => child.terminate()));
    expect(paged.balance).toBe(0);
    expect(await kernel.pagerInfo()).toEqual(baseline);
  });
});
