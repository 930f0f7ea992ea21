import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromSigned, fromU64, toSigned, toU64 } from '../../workers/store/u64.js';

const U64_MAX = (1n << 64n) - 1n;

describe('u64 <-> signed 64-bit', () => {
  it('maps the edges by two\'s complement', () => {
    const cases: Array<[bigint, bigint]> = [
      [0n, 0n],
      [1n, 1n],
      [2n ** 32n - 1n, 2n ** 32n - 1n],
      [2n ** 32n, 2n ** 32n],
      [2n ** 53n + 1n, 2n ** 53n + 1n],
      [2n ** 63n - 1n, 2n ** 63n - 1n],
      [2n ** 63n, -(2n ** 63n)],
      [2n ** 63n + 1n, -(2n ** 63n) + 1n],
      [U64_MAX, -1n],
    ];
    for (const [u, signed] of cases) {
      const [lo, hi] = fromU64(u);
      expect(toSigned(lo, hi)).toBe(signed);
      expect(fromSigned(signed)).toEqual([lo, hi]);
      expect(toU64(lo, hi)).toBe(u);
    }
  });

  it('round-trips every u64', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: U64_MAX }), (u) => {
        const [lo, hi] = fromU64(u);
        expect(lo >>> 0).toBe(lo);
        expect(hi >>> 0).toBe(hi);
        const s = toSigned(lo, hi);
        expect(s >= -(2n ** 63n) && s < 2n ** 63n).toBe(true);
        expect(fromSigned(s)).toEqual([lo, hi]);
      }),
      { numRuns: 2_000 },
    );
  });

  it('takes halves as uint32 even if they arrive as negative int32', () => {
    expect(toSigned(-1, -1)).toBe(-1n);
    expect(toSigned(-1, 0)).toBe(2n ** 32n - 1n);
  });

  it('fromU64 rejects values outside 0..2^64-1', () => {
    expect(() => fromU64(-1n)).toThrow(RangeError);
    expect(() => fromU64(U64_MAX + 1n)).toThrow(RangeError);
  });
});
