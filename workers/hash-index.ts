/**
 * Open-addressing index from user id to user slot. Linear probing keeps a probe inside one or two
 * cache lines; deletes shift the following cluster back (no tombstones), so a table that churns
 * through millions of evictions never degrades. Buckets hold slot + 1 so that 0 means empty and
 * a freshly zeroed SharedArrayBuffer is an empty table.
 */
import { CHAN_INDEX_SEED, USER_INDEX_SEED, hash64 } from './hash.js';
import { NIL, type ShardMemory } from './shard-memory.js';

export function userFind(m: ShardMemory, lo: number, hi: number): number {
  const table = m.userIndex;
  const mask = m.userMask;
  let i = hash64(lo, hi, USER_INDEX_SEED) & mask;
  for (;;) {
    const b = table[i];
    if (b === 0) return NIL;
    const s = b - 1;
    if (m.userLo[s] === lo && m.userHi[s] === hi) return s;
    i = (i + 1) & mask;
  }
}

export function userIndexInsert(m: ShardMemory, slot: number): void {
  const table = m.userIndex;
  const mask = m.userMask;
  let i = hash64(m.userLo[slot], m.userHi[slot], USER_INDEX_SEED) & mask;
  while (table[i] !== 0) i = (i + 1) & mask;
  table[i] = slot + 1;
}

export function userIndexRemove(m: ShardMemory, slot: number): void {
  const table = m.userIndex;
  const mask = m.userMask;
  let i = hash64(m.userLo[slot], m.userHi[slot], USER_INDEX_SEED) & mask;
  while (table[i] !== slot + 1) {
    if (table[i] === 0) return;
    i = (i + 1) & mask;
  }
  let j = i;
  for (;;) {
    j = (j + 1) & mask;
    const b = table[j];
    if (b === 0) break;
    const home = hash64(m.userLo[b - 1], m.userHi[b - 1], USER_INDEX_SEED) & mask;
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
// is stable while the user is cached, and all of a user's read states leave with it.

function chanHome(owner: number, lo: number, hi: number, mask: number): number {
  return hash64(lo, hi ^ Math.imul(owner, 0x9e3779b1), CHAN_INDEX_SEED) & mask;
}

export function chanFind(m: ShardMemory, owner: number, lo: number, hi: number): number {
  const table = m.chanIndex;
  const mask = m.chanMask;
  let i = chanHome(owner, lo, hi, mask);
  for (;;) {
    const b = table[i];
    if (b === 0) return NIL;
    const s = b - 1;
    if (m.rsChanLo[s] === lo && m.rsChanHi[s] === hi && m.rsOwner[s] === owner) return s;
    i = (i + 1) & mask;
  }
}

export function chanIndexInsert(m: ShardMemory, slot: number): void {
  const table = m.chanIndex;
  const mask = m.chanMask;
  let i = chanHome(m.rsOwner[slot], m.rsChanLo[slot], m.rsChanHi[slot], mask);
  while (table[i] !== 0) i = (i + 1) & mask;
  table[i] = slot + 1;
}

export function chanIndexRemove(m: ShardMemory, slot: number): void {
  const table = m.chanIndex;
  const mask = m.chanMask;
  let i = chanHome(m.rsOwner[slot], m.rsChanLo[slot], m.rsChanHi[slot], mask);
  while (table[i] !== slot + 1) {
    if (table[i] === 0) return;
    i = (i + 1) & mask;
  }
  let j = i;
  for (;;) {
    j = (j + 1) & mask;
    const b = table[j];
    if (b === 0) break;
    const s = b - 1;
    if (movable(i, j, chanHome(m.rsOwner[s], m.rsChanLo[s], m.rsChanHi[s], mask))) {
      table[i] = b;
      i = j;
    }
  }
  table[i] = 0;
}
