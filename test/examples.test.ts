import { describe, expect, it } from 'vitest';

describe('examples/ports.mjs (the README example)', () => {
  it('runs a client on node 0 against a server on node 1 that answers on the reply right each request carries', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/ports.mjs') as { main: () => Promise<string[]> };
    expect(await main()).toEqual(['node 1 says: HELLO', 'node 1 says: MACH']);
  });
});

describe('examples/barrier.mjs (the README threads example)', () => {
  it('keeps a thread on each node in lockstep at a shared-memory Barrier and counts exactly', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/barrier.mjs') as { main: (rounds: number) => Promise<{ nodes: number[]; total: number }> };
    expect(await main(50)).toEqual({ nodes: [0, 1], total: 100 });
  });
});
