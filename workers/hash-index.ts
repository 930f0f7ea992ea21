/**
 * Open-addressing index from user id to user slot. Linear probing keeps a probe inside one or two
 * cache lines; deletes shift the following cluster back (no tombstones), so a table that churns
 * through millions of evictions never degrades. Buckets hold slot + 1 so that 0 means empty and
 * a freshly zeroed SharedArrayBuffer is an empty table.
 */
import { CHAN_INDEX_SEED, USER_INDEX_SEED, hash64 } from './hash.js';
import { NIL, RS_OWNER_BITS, rsOwnerOf, type ShardMemory } from './shard-memory.js';

/**
 * Maps a 32-bit hash onto [0, size) by multiply-shift (Lemire's "fastrange"): the table can have
 * any size, so its memory follows --capacity instead of jumping to the next power of two. The
 * product is below 2^59, rounded to a double; the rounding error (< size * 2^-20) never reaches
 * the next multiple of 2^32, so the result is always < size.
 */
export function bucketOf(hash: number, size: number): number {
  return ((hash * size) / 4294967296) >>> 0;
}

export function userFind(m: ShardMemory, lo: number, hi: number): number {
  const table = m.userIndex;
  const size = table.length;
  let i = bucketOf(hash64(lo, hi, USER_INDEX_SEED), size);
  for (;;) {
    const b = table[i];
    if (b === 0) return NIL;
    const s = b - 1;
    if (m.userLo[s] === lo && m.userHi[s] === hi) return s;
    if (++i === size) i = 0;
  }
}

export function userIndexInsert(m: ShardMemory, slot: number): void {
  const table = m.userIndex;
  const size = table.length;
  let i = bucketOf(hash64(m.userLo[slot], m.userHi[slot], USER_INDEX_SEED), size);
  while (table[i] !== 0) if (++i === size) i = 0;
  table[i] = slot + 1;
}

export function userIndexRemove(m: ShardMemory, slot: number): void {
  const table = m.userIndex;
  const size = table.length;
  let i = bucketOf(hash64(m.userLo[slot], m.userHi[slot], USER_INDEX_SEED), size);
  while (table[i] !== slot + 1) {
    if (table[i] === 0) return;
    if (++i === size) i = 0;
  }
  let j = i;
  for (;;) {
    if (++j === size) j = 0;
    const b = table[j];
    if (b === 0) break;
    const home = bucketOf(hash64(m.userLo[b - 1], m.userHi[b - 1], USER_INDEX_SEED), size);
    if (movable(i, j, home)) {
      table[i] = b;
      i = j;
    }
  }
  table[i] = 0;
}

/** May the entry at j, whose home bucket is `home`, move back into the hole at i? */
export function movable(i: number, j: number, home: number): boolean {
  return i <= j ? home <= i || home > j : home <= i && home > j;
}

// The channel index has the same scheme; its key is (owner user slot, channel id). The owner slot
// is stable while the user is cached, and all of a user's read states leave with it. A bucket is
// tag | (slot + 1) (shard-memory.ts, chanTagMask): the tag is the hash remixed by one multiply,
// so keys whose hashes share the high bits bucketOf uses (neighbours in a cluster) still differ in it.

function chanHash(owner: number, lo: number, hi: number): number {
  return hash64(lo, hi ^ Math.imul(owner, 0x9e3779b1), CHAN_INDEX_SEED);
}

function chanTag(hash: number, tagMask: number): number {
  return Math.imul(hash, 0x85ebca6b) & tagMask;
}

/** The read-state slot a non-empty channel-index bucket points at. */
export function chanBucketSlot(m: ShardMemory, bucket: number): number {
  return ((bucket & m.chanSlotMask) >>> 0) - 1;
}

function chanHomeOf(m: ShardMemory, slot: number, size: number): number {
  return bucketOf(chanHash(rsOwnerOf(m, slot), m.rsChanLo[slot], m.rsChanHi[slot]), size);
}

export function chanFind(m: ShardMemory, owner: number, lo: number, hi: number): number {
  const table = m.chanIndex;
  const size = table.length;
  const tagMask = m.chanTagMask;
  const slotMask = m.chanSlotMask;
  const ownerBits = owner + 1;
  const h = chanHash(owner, lo, hi);
  const tag = chanTag(h, tagMask);
  let i = bucketOf(h, size);
  for (;;) {
    const b = table[i];
    if (b === 0) return NIL;
    if ((b & tagMask) === tag) {
      const s = ((b & slotMask) >>> 0) - 1;
      if (m.rsChanLo[s] === lo && m.rsChanHi[s] === hi && (m.rsOwner[s] & RS_OWNER_BITS) === ownerBits) return s;
    }
    if (++i === size) i = 0;
  }
}

export function chanIndexInsert(m: ShardMemory, slot: number): void {
  const table = m.chanIndex;
  const size = table.length;
  const h = chanHash(rsOwnerOf(m, slot), m.rsChanLo[slot], m.rsChanHi[slot]);
  let i = bucketOf(h, size);
  while (table[i] !== 0) if (++i === size) i = 0;
  table[i] = chanTag(h, m.chanTagMask) | (slot + 1);
}

export function chanIndexRemove(m: ShardMemory, slot: number): void {
  const table = m.chanIndex;
  const size = table.length;
  const slotMask = m.chanSlotMask;
  let i = chanHomeOf(m, slot, size);
  for (;;) {
    const b = table[i];
    if (b === 0) return;
    if (((b & slotMask) >>> 0) === slot + 1) break;
    if (++i === size) i = 0;
  }
  let j = i;
  for (;;) {
    if (++j === size) j = 0;
    const b = table[j];
    if (b === 0) break;
    if (movable(i, j, chanHomeOf(m, ((b & slotMask) >>> 0) - 1, size))) {
      table[i] = b;
      i = j;
    }
  }
  table[i] = 0;
}
