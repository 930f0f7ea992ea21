/**
 * Intrusive LRU over user slots. The cache unit is the user (their read states are loaded together
 * on connect and evicted together), so the list links users, not read states: prev/next are slot
 * numbers in typed arrays, head = least recently used, tail = most recently used. Header words
 * hold head/tail as slot + 1 so that a zeroed header is an empty list.
 * Only RESIDENT users are linked; a user being loaded is not evictable and stays off the list.
 */
import { H_LRU_HEAD, H_LRU_TAIL, NIL, type ShardMemory } from './shard-memory.js';

export function lruHead(m: ShardMemory): number {
  const head = m.header[H_LRU_HEAD];
  return head === 0 ? NIL : head - 1;
}

export function lruAppend(m: ShardMemory, u: number): void {
  const tail = m.header[H_LRU_TAIL];
  m.userPrev[u] = tail === 0 ? NIL : tail - 1;
  m.userNext[u] = NIL;
  if (tail === 0) m.header[H_LRU_HEAD] = u + 1;
  else m.userNext[tail - 1] = u;
  m.header[H_LRU_TAIL] = u + 1;
}

export function lruUnlink(m: ShardMemory, u: number): void {
  const prev = m.userPrev[u];
  const next = m.userNext[u];
  if (prev === NIL) m.header[H_LRU_HEAD] = next === NIL ? 0 : next + 1;
  else m.userNext[prev] = next;
  if (next === NIL) m.header[H_LRU_TAIL] = prev === NIL ? 0 : prev + 1;
  else m.userPrev[next] = prev;
  m.userPrev[u] = NIL;
  m.userNext[u] = NIL;
}

/** Marks u most recently used. The common case (already the tail) costs one compare. */
export function lruTouch(m: ShardMemory, u: number): void {
  if (m.header[H_LRU_TAIL] === u + 1) return;
  lruUnlink(m, u);
  lruAppend(m, u);
}
