/**
 * Slot allocation for read states and users. Slots come from a high-water mark until it reaches
 * capacity, then from a free list threaded through an existing column (rsNext / userNext), so the
 * free list costs no memory of its own and untouched pages of the slabs are never faulted in.
 * Header words hold the free-list head as slot + 1 (0 = empty).
 */
import {
  H_RS_COUNT,
  H_RS_FREE,
  H_RS_HWM,
  H_USER_COUNT,
  H_USER_FREE,
  H_USER_HWM,
  NIL,
  USER_FREE,
  type ShardMemory,
} from './shard-memory.js';

export function rsAlloc(m: ShardMemory): number {
  const h = m.header;
  let s: number;
  if (h[H_RS_FREE] !== 0) {
    s = h[H_RS_FREE] - 1;
    const next = m.rsNext[s];
    h[H_RS_FREE] = next === NIL ? 0 : next + 1;
  } else if (h[H_RS_HWM] < m.capacity) {
    s = h[H_RS_HWM]++;
  } else {
    return NIL;
  }
  h[H_RS_COUNT]++;
  return s;
}

export function rsRelease(m: ShardMemory, s: number): void {
  const h = m.header;
  m.rsNext[s] = h[H_RS_FREE] === 0 ? NIL : h[H_RS_FREE] - 1;
  m.rsOwner[s] = 0;
  h[H_RS_FREE] = s + 1;
  h[H_RS_COUNT]--;
}

export function userAlloc(m: ShardMemory): number {
  const h = m.header;
  let u: number;
  if (h[H_USER_FREE] !== 0) {
    u = h[H_USER_FREE] - 1;
    const next = m.userNext[u];
    h[H_USER_FREE] = next === NIL ? 0 : next + 1;
  } else if (h[H_USER_HWM] < m.maxUsers) {
    u = h[H_USER_HWM]++;
  } else {
    return NIL;
  }
  h[H_USER_COUNT]++;
  return u;
}

export function userRelease(m: ShardMemory, u: number): void {
  const h = m.header;
  m.userNext[u] = h[H_USER_FREE] === 0 ? NIL : h[H_USER_FREE] - 1;
  m.userState[u] = USER_FREE;
  h[H_USER_FREE] = u + 1;
  h[H_USER_COUNT]--;
}
