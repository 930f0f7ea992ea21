/**
 * Which cluster partition a user belongs to: the service's partition function, copied here because
 * the client imports nothing from the service's sources. It must give the same answer as the
 * server for every id (a test compares both over random and edge ids), or a client would send a
 * user's calls to an instance that does not own them (still answered, but forwarded: one more hop).
 *
 * The id is split into two uint32 halves without BigInt and without doubles above 2^53, the same
 * way the server parses ids, and mixed with murmur3's fmix32 under the partition seed.
 */

const TWO_32 = 4294967296;

/** The server's seed for partitions (a different one from its shard routing, so that a partition's users spread over every shard). */
export const PARTITION_SEED = 0x3c6ef372;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hash64(lo: number, hi: number, seed: number): number {
  return fmix32(Math.imul(fmix32(hi ^ seed), 0x9e3779b1) ^ lo);
}

/**
 * The partition (0..partitions-1) of a user id given as a canonical unsigned 64-bit decimal string
 * (the client validates ids before it routes them). Each digit multiplies the low half by 10 in a
 * double, exact below 2^36, and carries into the high half.
 */
export function partitionOfId(id: string, partitions: number): number {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < id.length; i++) {
    const x = lo * 10 + (id.charCodeAt(i) - 48);
    const carry = Math.floor(x / TWO_32);
    lo = x - carry * TWO_32;
    hi = hi * 10 + carry;
  }
  return hash64(lo, hi, PARTITION_SEED) % partitions;
}
