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

describe('examples/life.mjs (Game of Life, a thread per node at the library Barrier)', () => {
  it('computes the same grid on a thread per node as on a single thread', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/life.mjs') as { main: (options: object) => Promise<{ nodes: number; alive: number; equal: boolean }> };
    const result = await main({ nodes: 2, width: 48, height: 40, generations: 20 });
    expect(result).toMatchObject({ nodes: 2, equal: true });
    expect(result.alive).toBeGreaterThan(0);
  });
});

describe('examples/token-ring.mjs (a token passed by mach_msg round a ring of tasks)', () => {
  it('passes the token round a ring of one task per node, every hop checked, and times a hop', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/token-ring.mjs') as { main: (options: object) => Promise<{ nodes: number; hops: number; perHopMs: number }> };
    const result = await main({ nodes: 2, laps: 50 });
    expect(result).toMatchObject({ nodes: 2, hops: 100 });
    expect(result.perHopMs).toBeGreaterThan(0);
  });
});

describe('examples/teleport-server.mjs (a worker teleported under load behind a server on every node)', () => {
  it('loses no request while the worker moves between nodes and its receive right moves with it', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/teleport-server.mjs') as { main: (options: object) => Promise<{
      requests: number; replies: number; forwarded: number; served: number; places: { node: number; served: number }[];
    }> };
    const result = await main({ nodes: 2, moves: 2, perMove: 20 });
    expect(result.requests).toBeGreaterThan(40);
    expect(result.replies).toBe(result.requests);
    expect(result.forwarded).toBe(result.requests);
    expect(result.served).toBe(result.requests);
    expect(result.places.map((place) => place.node)).toEqual([0, 1, 0]);
    expect(result.places.every((place) => place.served > 0)).toBe(true);
  });
});

describe('examples/exception.mjs (a handler on node 1 restarts a failed thread on node 0)', () => {
  it('catches the exception_raise, sets a new state and resumes the thread with KERN_SUCCESS', async () => {
    // @ts-expect-error -- a plain .mjs example, imported as users run it
    const { main } = await import('../examples/exception.mjs') as { main: () => Promise<{
      caught: { node: number; id: number; exception: number; code: number[]; error: string }; result: { node: number; result: number };
    }> };
    const { caught, result } = await main();
    expect(caught).toEqual({ node: 1, id: 2401, exception: 5, code: [0x10555, 0], error: 'RangeError: cannot split 100 by 0' });
    expect(result).toEqual({ node: 0, result: 5050 });
  });
});
