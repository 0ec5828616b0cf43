/**
 * Task and thread calls sent as messages to kernel ports (issue 9 item 4, the MIG server side):
 * task code on node 0 calls a task on node 1 through its task port and its thread's port; the
 * kernel on node 1 serves the routine and answers on the send-once reply right with id + 100.
 */
import { describe, expect, it } from 'vitest';
import {
  KERN_SUCCESS, KobjectCall, MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MOVE_SEND, MIG_BAD_ID, THREAD_BASIC_INFO,
  TH_STATE_STOPPED, type Kernel,
} from 'norma-rt';
import { bootKernel, fixture, itInOneProcess } from './helpers.js';

const code = fixture('kobject-calls.mjs');
const TARGET_PORT = 0x7001;

/** A caller task on node 0 holding, as TARGET_PORT, a send right to a target task on node 1, which has one stopped thread. */
async function setup() {
  const kernel: Kernel = await bootKernel();
  const caller = await kernel.bootstrapTask.createOn(0);
  const target = await kernel.bootstrapTask.createOn(1);
  expect((await kernel.mach.thread_create(target)).kr).toBe(KERN_SUCCESS);
  const self = await target.execute(code, 'selfName') as number;
  await caller.insertRight(TARGET_PORT, await target.extractRight(self, MACH_MSG_TYPE_COPY_SEND), MACH_MSG_TYPE_MOVE_SEND);
  return { kernel, caller, target };
}

describe('kernel ports serve task and thread calls sent as messages', () => {
  it('task_suspend / task_info / task_resume on a task on another node', async () => {
    const { caller, target } = await setup();
    const [suspended, info, resumed, after] = await caller.execute(code, 'calls', TARGET_PORT, [
      { id: KobjectCall.task_suspend }, { id: KobjectCall.task_info }, { id: KobjectCall.task_resume }, { id: KobjectCall.task_info },
    ]) as Array<{ sendKr: number; replyId: number; retCode: number; out?: { suspendCount: number; node: number; threadCount: number } }>;
    expect(suspended).toEqual({ sendKr: 0, replyId: KobjectCall.task_suspend + 100, retCode: KERN_SUCCESS });
    expect(info).toMatchObject({ replyId: KobjectCall.task_info + 100, retCode: KERN_SUCCESS, out: { suspendCount: 1, node: 1, threadCount: 1 } });
    expect(resumed).toMatchObject({ retCode: KERN_SUCCESS });
    expect(after!.out!.suspendCount).toBe(0);
    expect((await target.info()).suspendCount).toBe(0);
  });

  itInOneProcess('task_threads answered across processes hands out thread ports that are not usable there yet')(
    'thread_info / thread_suspend by messages to a thread port on another node; an unknown thread id answers MIG_BAD_ID', async () => {
    const { caller } = await setup();
    const [info, suspended, again, bad] = await (await caller.spawn(code, 'onFirstThread', TARGET_PORT, [
      { id: KobjectCall.thread_info, args: [THREAD_BASIC_INFO] }, { id: KobjectCall.thread_suspend },
      { id: KobjectCall.thread_info, args: [THREAD_BASIC_INFO] }, { id: 3999 },
    ])).join() as Array<{ replyId: number; retCode: number; out?: unknown }>;
    expect(info).toMatchObject({ replyId: KobjectCall.thread_info + 100, retCode: KERN_SUCCESS, out: { runState: TH_STATE_STOPPED, suspendCount: 1 } });
    expect(suspended).toMatchObject({ retCode: KERN_SUCCESS });
    expect(again).toMatchObject({ out: { suspendCount: 2 } });
    expect(bad).toEqual({ sendKr: 0, replyId: 4099, retCode: MIG_BAD_ID });
  });

  it('an unknown id answers MIG_BAD_ID and changes nothing', async () => {
    const { caller, target } = await setup();
    const [bad] = await caller.execute(code, 'calls', TARGET_PORT, [{ id: 2999 }]) as Array<{ replyId: number; retCode: number; out?: unknown }>;
    expect(bad).toEqual({ sendKr: 0, replyId: 3099, retCode: MIG_BAD_ID });
    expect(MIG_BAD_ID).toBe(-303);
    expect((await target.info()).suspendCount).toBe(0);
  });

  it('a call without a reply right is served, and nothing answers it', async () => {
    const { caller, target } = await setup();
    // The second call comes after the first on the same path, so its answer sees the first served.
    const [sent, info] = await caller.execute(code, 'calls', TARGET_PORT, [
      { id: KobjectCall.task_suspend, noReply: true }, { id: KobjectCall.task_info },
    ]) as Array<{ sendKr: number; out?: { suspendCount: number } }>;
    expect(sent).toEqual({ sendKr: 0 });
    expect(info!.out!.suspendCount).toBe(1);
    expect((await target.info()).suspendCount).toBe(1);
  });
});
