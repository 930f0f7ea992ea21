import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatId, parseId, parsed } from '../../src/ids.js';

function halves(s: string): [number, number] | null {
  return parseId(s) ? [parsed.lo, parsed.hi] : null;
}

function toBig(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}

describe('parseId', () => {
  it.each([
    ['0', 0n],
    ['1', 1n],
    ['4294967295', 2n ** 32n - 1n],
    ['4294967296', 2n ** 32n],
    ['9007199254740993', 2n ** 53n + 1n],
    ['9223372036854775807', 2n ** 63n - 1n],
    ['9223372036854775808', 2n ** 63n],
    ['18446744073709551615', 2n ** 64n - 1n],
  ])('accepts %s', (s, value) => {
    const h = halves(s);
    expect(h).not.toBeNull();
    expect(toBig(h![0], h![1])).toBe(value);
  });

  it.each([
    ['18446744073709551616', '2^64'],
    ['99999999999999999999', '20 nines'],
    ['123456789012345678901', '21 digits'],
    ['00', 'leading zero'],
    ['01', 'leading zero'],
    ['-1', 'sign'],
    ['+1', 'sign'],
    [' 1', 'space'],
    ['1 ', 'space'],
    ['', 'empty'],
    ['1e3', 'exponent'],
    ['0x10', 'hex'],
    ['1.0', 'decimal point'],
  ])('rejects %s (%s)', (s) => {
    expect(parseId(s)).toBe(false);
  });

  it('rejects numbers and other non-strings', () => {
    for (const v of [5, 5n, null, undefined, {}, ['1'], true]) expect(parseId(v)).toBe(false);
  });

  it('round-trips every 64-bit value through format', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
        const s = v.toString();
        expect(parseId(s)).toBe(true);
        expect(toBig(parsed.lo, parsed.hi)).toBe(v);
        expect(formatId(parsed.lo, parsed.hi)).toBe(s);
      }),
      { numRuns: 20000 },
    );
  });

  it('formats the edges of the small-integer shortcut and of each five-digit step exactly', () => {
    const edges = [0n, 1n, 2n ** 30n - 1n, 2n ** 30n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 64n - 1n];
    // remainders that need zero padding (00000, 00001, 09999) and quotients that land on the Smi limit
    for (let k = 5n; k <= 15n; k += 5n) edges.push(10n ** k, 10n ** k + 1n, 10n ** k - 1n, 2n ** 30n * 10n ** k, 2n ** 30n * 10n ** k - 1n, 10n ** (k + 4n) + 9999n);
    for (const v of [...edges, 10n ** 19n, 10n ** 19n - 1n].filter((x) => x < 2n ** 64n)) {
      const lo = Number(v & 0xffffffffn);
      const hi = Number(v >> 32n);
      expect(formatId(lo, hi)).toBe(v.toString());
    }
  });
});
