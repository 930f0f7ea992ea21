/**
 * Re-attaching a replacement shard worker to slabs that a previous worker filled (it died: an
 * uncaught error, out of memory, terminated). Everything a read state is lives in the
 * SharedArrayBuffers, so nothing acknowledged is lost; what was only in the dead worker's memory
 * (operations parked behind loads, the dirty FIFO) is rebuilt or answered with a retryable 503 by
 * the main thread.
 *
 * If the worker died between H_MUTATING = 1 and = 0 a mutation may be torn (a slot allocated but
 * not linked, an index entry half shifted), so the indexes, per-user lists, counts, free lists
 * and LRU are rebuilt from the slot data itself: the LIVE bit and owner of each read-state slot
 * and the state of each user slot. Otherwise only users caught mid-load are released.
 *
 * Either way every cached read state is marked dirty: the last batch may have taken write-behind
 * snapshots (clearing their DIRTY bits) in a reply that never reached the main thread, and that
 * is so even for a batch that finished, since a reply still in the message port is dropped with
 * the dead thread. Rewriting what the store may already have is harmless (last write wins), while
 * skipping it could lose an acknowledged change.
 */
import { chanFind, chanIndexInsert, userFind, userIndexInsert, userIndexRemove } from './hash-index.js';
import { lruAppend } from './lru.js';
import {
  H_DIRTY,
  H_LRU_HEAD,
  H_LRU_TAIL,
  H_MUTATING,
  H_RS_COUNT,
  H_RS_FREE,
  H_RS_HWM,
  H_USER_COUNT,
  H_USER_FREE,
  H_USER_HWM,
  NIL,
  RS_DIRTY_BIT,
  rsDirty,
  rsLive,
  rsOwnerOf,
  USER_FREE,
  USER_LOADING,
  USER_RESIDENT,
  type ShardMemory,
} from './shard-memory.js';
import { userRelease } from './slots.js';

export interface RecoveryReport {
  /** the indexes were rebuilt because a mutation may have been torn */
  rebuilt: boolean;
  /** users that were being loaded (their operations were lost with the worker) */
  releasedLoading: number;
  /** read-state slots dropped by a rebuild (torn inserts, or owned by a user that was not resident) */
  droppedSlots: number;
}

/** Whether these slabs have been used by a worker before (a fresh shard has nothing to recover). */
export function hasState(m: ShardMemory): boolean {
  return m.header[H_USER_HWM] > 0 || m.header[H_RS_HWM] > 0;
}

export function recoverShard(m: ShardMemory): RecoveryReport {
  const report: RecoveryReport = { rebuilt: false, releasedLoading: 0, droppedSlots: 0 };
  if (m.header[H_MUTATING] !== 0) {
    rebuild(m, report);
    m.header[H_MUTATING] = 0;
    return report;
  }
  const hwm = m.header[H_USER_HWM];
  for (let u = 0; u < hwm; u++) {
    if (m.userState[u] !== USER_LOADING) continue;
    // A loading user holds no read states and is not on the LRU.
    userIndexRemove(m, u);
    userRelease(m, u);
    report.releasedLoading++;
  }
  markAllDirty(m);
  return report;
}

function markAllDirty(m: ShardMemory): void {
  const rsHwm = m.header[H_RS_HWM];
  for (let s = 0; s < rsHwm; s++) {
    if (!rsLive(m, s) || rsDirty(m, s)) continue;
    m.rsOwner[s] |= RS_DIRTY_BIT;
    m.userDirty[rsOwnerOf(m, s)]++;
    m.header[H_DIRTY]++;
  }
}

function rebuild(m: ShardMemory, report: RecoveryReport): void {
  const h = m.header;
  report.rebuilt = true;
  m.userIndex.fill(0);
  m.chanIndex.fill(0);
  h[H_LRU_HEAD] = 0;
  h[H_LRU_TAIL] = 0;

  // Users: keep the resident ones (first slot wins if an id appears twice), free the rest.
  const userHwm = h[H_USER_HWM];
  let users = 0;
  h[H_USER_FREE] = 0;
  for (let u = userHwm - 1; u >= 0; u--) {
    const keep = m.userState[u] === USER_RESIDENT;
    if (m.userState[u] === USER_LOADING) report.releasedLoading++;
    m.userHead[u] = NIL;
    m.userCount[u] = 0;
    m.userDirty[u] = 0;
    if (!keep) {
      m.userState[u] = USER_FREE;
      m.userNext[u] = h[H_USER_FREE] === 0 ? NIL : h[H_USER_FREE] - 1;
      h[H_USER_FREE] = u + 1;
    }
  }
  for (let u = 0; u < userHwm; u++) {
    if (m.userState[u] !== USER_RESIDENT) continue;
    if (userFind(m, m.userLo[u], m.userHi[u]) !== NIL) {
      m.userState[u] = USER_FREE;
      m.userNext[u] = h[H_USER_FREE] === 0 ? NIL : h[H_USER_FREE] - 1;
      h[H_USER_FREE] = u + 1;
      continue;
    }
    userIndexInsert(m, u);
    lruAppend(m, u);
    users++;
  }
  h[H_USER_COUNT] = users;

  // Read states: keep live slots of resident users (first slot wins per channel), free the rest.
  const rsHwm = h[H_RS_HWM];
  let live = 0;
  let dirty = 0;
  h[H_RS_FREE] = 0;
  for (let s = rsHwm - 1; s >= 0; s--) {
    const isLive = rsLive(m, s);
    const owner = rsOwnerOf(m, s);
    const ok =
      isLive &&
      owner < userHwm &&
      m.userState[owner] === USER_RESIDENT &&
      chanFind(m, owner, m.rsChanLo[s], m.rsChanHi[s]) === NIL;
    if (!ok) {
      if (isLive) report.droppedSlots++;
      m.rsOwner[s] = 0;
      m.rsNext[s] = h[H_RS_FREE] === 0 ? NIL : h[H_RS_FREE] - 1;
      h[H_RS_FREE] = s + 1;
      continue;
    }
    m.rsNext[s] = m.userHead[owner];
    m.userHead[owner] = s;
    m.userCount[owner]++;
    m.rsOwner[s] = (owner + 1) | RS_DIRTY_BIT;
    m.userDirty[owner]++;
    // a torn batch may have changed a read state before its user's version
    if (m.rsVersion[s] > m.userVersion[owner]) m.userVersion[owner] = m.rsVersion[s];
    dirty++;
    chanIndexInsert(m, s);
    live++;
  }
  h[H_RS_COUNT] = live;
  h[H_DIRTY] = dirty;
}
