import { describe, expect, it } from 'vitest';
import {
  KERN_INVALID_ARGUMENT, KERN_INVALID_CAPABILITY, KERN_SUCCESS, MACH_MSG_TYPE_MAKE_SEND,
  MACH_PORT_TYPE_SEND,
} from 'norma-rt';
import { bootKernel, fixture } from './helpers.js';

describe('port rights are capabilities', () => {
  it('mach_port_insert_right from task code refuses a right it made up with KERN_INVALID_ARGUMENT and changes nothing', async () => {
    const kernel = await bootKernel();
    const victim = await kernel.bootstrapTask.createOn(1);
    await victim.allocatePort();
    const thief = await kernel.bootstrapTask.create();
    const before = await thief.portNames();
    // Port ids are small sequential numbers: try a range of them.
    const answers = await Promise.all(Array.from({ length: 16 }, (_, i) =>
      thief.execute(fixture('forge.mjs'), 'forge', 262_145 + i)));
    expect(new Set(answers)).toEqual(new Set([KERN_INVALID_ARGUMENT]));
    expect(await thief.portNames()).toEqual(before);
  });

  it('kernel.mach.mach_port_insert_right refuses a made-up right object too', async () => {
    const kernel = await bootKernel({ nodes: 1 });
    const task = kernel.bootstrapTask;
    const kr = await kernel.mach.mach_port_insert_right(task, 0x5501, { kind: 'send', portId: 262_146 } as never, 17);
    expect(kr).toBe(KERN_INVALID_ARGUMENT);
  });

  it('an extracted PortRight goes into a space once; a second insert gets KERN_INVALID_CAPABILITY', async () => {
    const kernel = await bootKernel();
    const server = await kernel.bootstrapTask.createOn(1);
    const service = await server.allocatePort();
    const right = await server.extractRight(service, MACH_MSG_TYPE_MAKE_SEND);
    const a = await kernel.bootstrapTask.create();
    const b = await kernel.bootstrapTask.create();
    expect(await kernel.mach.mach_port_insert_right(a, 0x5501, right, right.type)).toBe(KERN_SUCCESS);
    expect(right.consumed).toBe(true);
    expect(await kernel.mach.mach_port_insert_right(b, 0x5501, right, right.type)).toBe(KERN_INVALID_CAPABILITY);
    expect(await a.portType(0x5501)).toBe(MACH_PORT_TYPE_SEND);
    expect((await b.portNames()).names).not.toContain(0x5501);
  });
});
