/**
 * Snowflake ids (unsigned 64-bit) as canonical decimal strings -> two uint32 halves (the other way,
 * digits written straight into an answer, is in render-json.ts).
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
