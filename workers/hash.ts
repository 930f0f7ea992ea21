/**
 * 32-bit mixes of 64-bit ids given as two uint32 halves (no BigInt, no doubles above 2^32).
 * Both halves go through a full avalanche (murmur3's fmix32), so sequential snowflakes, whose low
 * bits are a per-process counter and whose high bits are a timestamp, spread evenly.
 * Routing and the in-shard indexes use different seeds: if they shared one, every user of a shard
 * would have the same hash modulo the shard count and pile into the same index buckets.
 */

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function hash64(lo: number, hi: number, seed: number): number {
  return fmix32(Math.imul(fmix32(hi ^ seed), 0x9e3779b1) ^ lo);
}

export const ROUTE_SEED = 0x5bd1e995;
export const USER_INDEX_SEED = 0x27d4eb2f;
export const CHAN_INDEX_SEED = 0x165667b1;

/** Which shard owns a user: a 64-bit mix of both halves, then mod shards. */
export function shardOf(lo: number, hi: number, shards: number): number {
  return hash64(lo, hi, ROUTE_SEED) % shards;
}

export const PARTITION_SEED = 0x3c6ef372;

/**
 * Which cluster partition a user belongs to (--cluster mode): another mix of the same id, mod the
 * cluster's partition count. Its own seed, so that a partition's users spread over every shard
 * instead of all sitting in one.
 */
export function partitionOf(lo: number, hi: number, partitions: number): number {
  return hash64(lo, hi, PARTITION_SEED) % partitions;
}
