/**
 * The kmsg wire form (src/shared/kmsg-wire.ts): layout, round trip, range checks, body copies.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  KMSG_HEADER_BYTES, KMSG_RIGHT_BYTES, decodeKmsg, encodeKmsg, encodedLength, type WireKmsg, type WireRight,
} from '../src/shared/kmsg-wire.js';

function sample(overrides: Partial<WireKmsg> = {}): WireKmsg {
  return {
    dest: 2 ** 53, destType: 17, bits: 0xffffffff, id: -(2 ** 31), sender: 2 ** 53 - 1, seq: 0xffffffff,
    reply: { kind: 3, port: 12345678901 },
    rights: [{ kind: 0, port: 0 }, { kind: 1, port: 2 ** 40 + 3 }, { kind: 2, port: 9 }],
    body: Uint8Array.from([1, 2, 3, 4, 5]),
    ...overrides,
  };
}

const id = fc.integer({ min: 0, max: 2 ** 53 });
const right: fc.Arbitrary<WireRight> = fc.record({ kind: fc.constantFrom(0, 1, 2, 3), port: id });
const kmsgArb: fc.Arbitrary<WireKmsg> = fc.record({
  dest: id,
  destType: fc.constantFrom(17, 18),
  bits: fc.integer({ min: 0, max: 0xffffffff }),
  id: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  sender: id,
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  reply: fc.option(right, { nil: null }),
  rights: fc.array(right, { maxLength: 20 }),
  // Both sides of the small-body byte loop / large-body set() split.
  body: fc.uint8Array({ maxLength: 300 }),
});

describe('encodeKmsg / decodeKmsg', () => {
  it('encodedLength is the 48-byte header, 9 bytes per right and the body, and encodeKmsg writes exactly that', () => {
    const msg = sample();
    expect(encodedLength(msg)).toBe(KMSG_HEADER_BYTES + 3 * KMSG_RIGHT_BYTES + 5);
    const bytes = new Uint8Array(encodedLength(msg) + 16).fill(0xee);
    expect(encodeKmsg(msg, bytes, 8)).toBe(encodedLength(msg));
    expect(bytes.subarray(0, 8).every((b) => b === 0xee)).toBe(true);
    expect(bytes.subarray(8 + encodedLength(msg)).every((b) => b === 0xee)).toBe(true);
  });

  it('lays fields out little-endian as the diagram says, ids as float64', () => {
    const msg = sample();
    const bytes = new Uint8Array(encodedLength(msg));
    encodeKmsg(msg, bytes);
    const view = new DataView(bytes.buffer);
    expect(view.getFloat64(0, true)).toBe(2 ** 53);
    expect(view.getFloat64(8, true)).toBe(2 ** 53 - 1);
    expect(view.getFloat64(16, true)).toBe(12345678901);
    expect(view.getUint32(24, true)).toBe(0xffffffff);
    expect(view.getInt32(28, true)).toBe(-(2 ** 31));
    expect(view.getUint32(32, true)).toBe(0xffffffff);
    expect(view.getUint32(36, true)).toBe(5);
    expect(view.getUint32(40, true)).toBe(3);
    expect([view.getUint8(44), view.getUint8(45), view.getUint16(46, true)]).toEqual([17, 3, 0]);
    expect(view.getFloat64(48 + 8, true)).toBe(2 ** 40 + 3);
    expect([...bytes.subarray(72, 75)]).toEqual([0, 1, 2]);
    expect([...bytes.subarray(75)]).toEqual([1, 2, 3, 4, 5]);
  });

  it('marks a missing reply with kind 0xff and decodes it back to null', () => {
    const msg = sample({ reply: null, rights: [], body: new Uint8Array(0) });
    const bytes = new Uint8Array(encodedLength(msg));
    encodeKmsg(msg, bytes);
    expect(bytes[45]).toBe(0xff);
    expect(decodeKmsg(bytes)).toEqual(msg);
  });

  it('round-trips any message through a DataView at an unaligned offset (property)', () => {
    fc.assert(fc.property(kmsgArb, fc.nat(15), (msg, offset) => {
      const view = new DataView(new SharedArrayBuffer(offset + encodedLength(msg) + 7));
      expect(encodeKmsg(msg, view, offset)).toBe(encodedLength(msg));
      const decoded = decodeKmsg(view, offset, encodedLength(msg));
      expect(decoded).toEqual(msg);
      expect(decoded.body).toBeInstanceOf(Uint8Array);
    }), { numRuns: 500 });
  });

  it('decodes a body that is a copy in an unshared buffer, not a view of the source', () => {
    for (const length of [3, 200]) {
      const msg = sample({ body: new Uint8Array(length).fill(7) });
      const source = new Uint8Array(new SharedArrayBuffer(encodedLength(msg)));
      encodeKmsg(msg, source);
      const decoded = decodeKmsg(source);
      source.fill(0);
      expect(decoded.body.buffer).toBeInstanceOf(ArrayBuffer);
      expect(decoded.body.every((b) => b === 7)).toBe(true);
      expect(decoded.body.length).toBe(length);
    }
  });

  it.each([
    ['dest above 2**53', { dest: 2 ** 53 + 2 }],
    ['a fractional sender', { sender: 1.5 }],
    ['destType 19', { destType: 19 }],
    ['negative bits', { bits: -1 }],
    ['id above i32', { id: 2 ** 31 }],
    ['seq above u32', { seq: 2 ** 32 }],
    ['a reply of kind 4', { reply: { kind: 4 as WireRight['kind'], port: 1 } }],
    ['a right with a negative port', { rights: [{ kind: 2 as const, port: -1 }] }],
  ])('encodeKmsg throws RangeError for %s and writes nothing', (_what, overrides) => {
    const msg = sample(overrides);
    const bytes = new Uint8Array(encodedLength(msg));
    expect(() => encodeKmsg(msg, bytes)).toThrow(RangeError);
    expect(bytes.every((b) => b === 0)).toBe(true);
  });

  it('encodeKmsg throws RangeError when the message does not fit at the offset and writes nothing', () => {
    const msg = sample();
    const bytes = new Uint8Array(encodedLength(msg) + 3);
    expect(() => encodeKmsg(msg, bytes, 4)).toThrow(RangeError);
    expect(bytes.every((b) => b === 0)).toBe(true);
  });

  it('decodeKmsg throws RangeError for a truncated, overlong or corrupt record', () => {
    const msg = sample();
    const bytes = new Uint8Array(encodedLength(msg) + 1);
    encodeKmsg(msg, bytes);
    expect(() => decodeKmsg(bytes.subarray(0, 40))).toThrow(RangeError);
    expect(() => decodeKmsg(bytes)).toThrow(RangeError);
    expect(() => decodeKmsg(bytes.subarray(0, encodedLength(msg) - 1))).toThrow(RangeError);
    const exact = bytes.subarray(0, encodedLength(msg));
    expect(decodeKmsg(exact)).toEqual(msg);
    exact[44] = 19;
    expect(() => decodeKmsg(exact)).toThrow(/destType 19/);
    exact[44] = 17;
    exact[72] = 9;
    expect(() => decodeKmsg(exact)).toThrow(/right 0 has kind 9/);
  });
});
