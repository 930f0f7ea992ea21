/**
 * Snowflake ids (unsigned 64-bit) as canonical decimal strings <-> two uint32 halves.
 *
 * Parsing never builds a BigInt or a number above 2^53: each digit multiplies the low half by 10
 * in a double (exact below 2^36) and carries into the high half. The halves are written to a
 * module-level scratch pair so that parsing allocates nothing.
 */

const TWO_32 = 4294967296;

/** Output of parseId: valid until the next call. */
export const parsed = { lo: 0, hi: 0 };

/**
 * Parses a canonical unsigned 64-bit decimal ("0", or 1-20 digits without a leading zero, at
 * most 18446744073709551615). Returns false for anything else (including non-strings).
 */
export function parseId(s: unknown): boolean {
  if (typeof s !== 'string') return false;
  const n = s.length;
  if (n === 0 || n > 20) return false;
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (d === 0 && i === 0 && n > 1) return false;
    const x = lo * 10 + d;
    const carry = Math.floor(x / TWO_32);
    lo = x - carry * TWO_32;
    hi = hi * 10 + carry;
    if (hi >= TWO_32) return false;
  }
  parsed.lo = lo;
  parsed.hi = hi;
  return true;
}

/**
 * Decimal string of the unsigned 64-bit value hi * 2^32 + lo.
 *
 * Snowflakes are above 2^53, and turning a double that large into text is V8's slow path (the
 * shortest-representation algorithm); small integers (Smis) take the fast one. So the value is
 * divided by 10^5 until what is left is a Smi: each step's remainder is five digits, and every
 * intermediate stays below 2^53, so the arithmetic is exact. A 19-digit snowflake takes two steps.
 */
export function formatId(lo: number, hi: number): string {
  if (hi === 0 && lo < SMI_LIMIT) return '' + lo;
  let out = '';
  while (hi !== 0 || lo >= SMI_LIMIT) {
    const qh = Math.floor(hi / 100000);
    const cur = (hi - qh * 100000) * TWO_32 + lo; // < 10^5 * 2^32 < 2^53
    const ql = Math.floor(cur / 100000);
    out = pad5(cur - ql * 100000) + out;
    hi = qh;
    lo = ql;
  }
  return lo + out;
}

/** Largest values V8 keeps as small integers on every build (31-bit Smis). */
const SMI_LIMIT = 0x40000000;

function pad5(n: number): string {
  return n >= 10000 ? '' + n : n >= 1000 ? '0' + n : n >= 100 ? '00' + n : n >= 10 ? '000' + n : '0000' + n;
}
