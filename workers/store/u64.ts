/**
 * Unsigned 64-bit ids (two uint32 halves on the wire) <-> the signed 64-bit integers the stores
 * keep (SQLite INTEGER and Cassandra bigint are both signed 64-bit).
 *
 * The mapping is two's complement: 0 .. 2^63-1 are stored as themselves, 2^63 .. 2^64-1 as
 * -2^63 .. -1. It is a bijection, so every u64 round-trips exactly; note that ordering differs
 * for ids >= 2^63 (they sort before the small ones), which nothing here relies on.
 *
 * cassandra-driver's `types.Long.fromBits(lo, hi, false)` is the same mapping without a BigInt
 * (the Cassandra store uses that; `low >>> 0` / `high >>> 0` converts back).
 */

const MASK32 = 0xffffffffn;

/** The signed 64-bit integer whose bits are the u64 (hi:lo). */
export function toSigned(lo: number, hi: number): bigint {
  return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
}

/** The u64 halves [lo, hi] of a signed 64-bit integer (any bigint is taken modulo 2^64). */
export function fromSigned(v: bigint): [number, number] {
  const u = BigInt.asUintN(64, v);
  return [Number(u & MASK32), Number(u >> 32n)];
}

/** The u64 (hi:lo) as an unsigned bigint (tests, logs). */
export function toU64(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** The halves [lo, hi] of an unsigned bigint; throws outside 0 .. 2^64-1. */
export function fromU64(v: bigint): [number, number] {
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`not an unsigned 64-bit integer: ${v}`);
  return [Number(v & MASK32), Number(v >> 32n)];
}
