/**
 * The byte writer's numbers (src/json-bytes.ts) against String(): every digit-count boundary,
 * the int32 and 10^8 split points, 2^53, and random values of every magnitude.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { begin, finish, id64, uint } from '../../src/json-bytes.js';

function written(f: () => void): string {
  begin(64);
  f();
  return finish().toString('latin1');
}

describe('json-bytes numbers', () => {
  it('uint spells integers as String() does', () => {
    const edges: number[] = [0, 1, 9, 10, 99, 100, 101, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 2 ** 53, 2 ** 60];
    for (let k = 1; k <= 16; k++) edges.push(10 ** k - 1, 10 ** k, 10 ** k + 1, 10 ** k + 10 ** (k - 1) * 5);
    for (const v of edges) expect(written(() => uint(v)), String(v)).toBe(String(v));
    fc.assert(
      fc.property(fc.oneof(fc.integer({ min: 0, max: 2 ** 31 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.nat({ max: 999_999_999 }).map((x) => x * 100_000_000 + 7)), (v) => {
        expect(written(() => uint(v))).toBe(String(v));
      }),
      { seed: 0x5eed, numRuns: 5000 },
    );
  });

  it('id64 spells 64-bit values from their halves as BigInt does', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (x) => {
        expect(written(() => id64(Number(x & 0xffffffffn), Number(x >> 32n)))).toBe(x.toString());
      }),
      { seed: 0x5eed, numRuns: 5000 },
    );
  });
});
