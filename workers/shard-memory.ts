/**
 * Memory of one shard: every read state and every cached user lives in these preallocated
 * SharedArrayBuffers, laid out as a struct of arrays (one typed array per field).
 *
 * Why this layout:
 * - A JS object per read state costs ~500 bytes and, worse, is one more thing for V8's collector to
 *   mark on every major GC; at tens of millions of read states that is seconds of marking. Typed
 *   arrays are a handful of objects whatever their length, so the heap the GC walks stays tiny.
 * - The buffers are SharedArrayBuffers created by the main thread and passed to the worker in
 *   workerData. The main thread keeps a reference, so a replacement worker can re-attach to the
 *   same data if a shard worker dies.
 * - Pages of a SharedArrayBuffer are zero-filled lazily by the OS: a large --capacity costs address
 *   space at start-up, and resident memory only as slots are touched. Slots are handed out from a
 *   high-water mark first, so an unused tail is never written.
 *
 * Read state slot `s` (bytes per slot: 48):
 *   chanLo/chanHi  u32 x2   channel id halves
 *   msgLo/msgHi    u32 x2   last_message_id halves
 *   mention        u32      mention_count (saturates at 2^31-1)
 *   pin            f64      last_pin_timestamp (integer ms < 2^53, exact in a double)
 *   flags          u32
 *   version        f64      integer >= 1, exact to 2^53
 *   owner          u32      bits 0-30: the owning user slot + 1 (part of the channel-index key;
 *                           0 = the slot holds no read state); bit 31: DIRTY (changed since the
 *                           store last saw it). Slot and state share the word because --max-users
 *                           stays below 2^31: a state byte of its own cost 1 B per read state.
 *   next           u32      next read state of the same user, or the free list link
 * The write-behind FIFO of dirty slots is not here: it lives in the worker, sized by what is dirty
 *   (dirty-ring.ts), so a drained write-back leaves nothing resident per read state.
 * Channel index: open addressing (linear probing, backward-shift delete: no tombstones), buckets
 *   hold slot+1 (0 = empty) under a tag of the key's hash; capacity / 0.8 buckets, any count (a
 *   hash is mapped onto the table by multiply-shift, not a mask), so it costs 5.0 bytes per read
 *   state whatever --capacity is.
 *
 * User slot `u`: uidLo/uidHi, head (first read state), count, dirty count, LRU prev/next, state; plus a user
 * index (same scheme as the channel index). The LRU is intrusive: prev/next are slot numbers in
 * typed arrays, so touching a user is a few integer stores and allocates nothing.
 *
 * Per user slot, for delta sync (24 bytes): userVersion f64 (the timestamp of the user's latest
 * change, deletes included), userHorizon f64 (every delete of the user after it is in the
 * tombstone ring), userTombHead f64 (ring position + 1 of the user's newest tombstone, 0 = none).
 * Tombstone ring (one entry per user slot, 28 bytes each): the shard's latest deletes, oldest
 * overwritten first; entry: user id halves, channel id halves, ts f64, and the distance back to
 * the same user's previous entry (0 = none). Nothing is added per read state.
 *
 * All slot numbers are u32. Capacities worth a slab at all exceed 65535, and keeping one array type
 * per field keeps the hot functions monomorphic.
 */

import { allocateLedger, type LedgerBuffers } from './crash-ledger.js';

export const NIL = 0xffffffff;

/** header word offsets (Int32Array over its own small buffer) */
export const H_RS_HWM = 0; // read-state slots ever handed out
export const H_RS_FREE = 1; // head of the read-state free list (slot+1, 0 = empty)
export const H_RS_COUNT = 2; // live read states
export const H_USER_HWM = 3;
export const H_USER_FREE = 4;
export const H_USER_COUNT = 5;
export const H_LRU_HEAD = 6; // least recently used user slot + 1 (0 = empty)
export const H_LRU_TAIL = 7; // most recently used user slot + 1
export const H_DIRTY = 8; // read states with the DIRTY bit set
export const H_MUTATING = 9; // 1 while a batch is being applied: a worker that died mid-batch may have torn a mutation
/** last write timestamp handed out (µs, two u32 halves): a replacement worker continues above it */
export const H_CLOCK_LO = 10;
export const H_CLOCK_HI = 11;
/** times the wall clock was seen to step back, and the largest step (ms); the main thread logs them */
export const H_CLOCK_BACK_STEPS = 12;
export const H_CLOCK_BACK_MAX_MS = 13;
/** 1 while an op is being applied, and its ticket word (crash-ledger.ts) */
export const H_EXECUTING = 14;
export const H_EXECUTING_TICKET = 15;
/** words of the current batch's journal frame in the ledger's scratch (crash-ledger.ts) */
export const H_LEDGER_JOURNAL_LEN = 16;
/** workers started on these buffers, and dead workers' ledgers the main thread has read */
export const H_STARTS = 17;
export const H_RESCUED = 18;
/** tombstone ring entries ever written (two u32 halves) */
export const H_TOMB_POS_LO = 19;
export const H_TOMB_POS_HI = 20;
/** sequence number of the last message this shard posted to the store host (store-status.ts S_RECEIVED) */
export const H_STORE_SEQ = 21;
/** idle collections this shard's workers ran (the main thread's process-wide idle check reads it) */
export const H_IDLE_COLLECTIONS = 22;
export const H_WORDS = 24;

/** rsOwner's DIRTY bit, and the bits holding the owner slot + 1 (0: a free slot, not a read state) */
export const RS_DIRTY_BIT = 0x80000000;
export const RS_OWNER_BITS = 0x7fffffff;
/** the largest --max-users of a shard: owner + 1 must fit RS_OWNER_BITS */
export const MAX_SHARD_USERS = RS_OWNER_BITS - 1;

/** The user slot owning read-state slot `s`, which must hold a read state. */
export function rsOwnerOf(m: ShardMemory, s: number): number {
  return (m.rsOwner[s] & RS_OWNER_BITS) - 1;
}

/** Does slot `s` hold a read state? (lets a replacement worker rebuild the indexes from slot data) */
export function rsLive(m: ShardMemory, s: number): boolean {
  return (m.rsOwner[s] & RS_OWNER_BITS) !== 0;
}

export function rsDirty(m: ShardMemory, s: number): boolean {
  return m.rsOwner[s] >= RS_DIRTY_BIT;
}

export const USER_FREE = 0;
export const USER_RESIDENT = 1;
export const USER_LOADING = 2;

/**
 * Highest fill of the user index. Linear probing at 0.7 averages ~2.2 probes for a hit and ~6 for
 * a miss (an insert); every probe reads the candidate user's id columns.
 */
export const USER_INDEX_LOAD = 0.7;

/**
 * Highest fill of the channel index. Its buckets carry a tag of the key's hash (chanTagMask), so
 * a probe that passes a foreign entry almost never reads that read state's columns: the ~3 probes
 * of a hit and ~13 of a miss at 0.8 are mostly sequential words of one or two cache lines, and the
 * index costs 5.0 instead of 5.7 bytes per read state.
 */
export const CHAN_INDEX_LOAD = 0.8;

export interface ShardBuffers {
  capacity: number;
  maxUsers: number;
  ledger: LedgerBuffers;
  header: SharedArrayBuffer;
  rsChanLo: SharedArrayBuffer;
  rsChanHi: SharedArrayBuffer;
  rsMsgLo: SharedArrayBuffer;
  rsMsgHi: SharedArrayBuffer;
  rsMention: SharedArrayBuffer;
  rsPin: SharedArrayBuffer;
  rsFlags: SharedArrayBuffer;
  rsVersion: SharedArrayBuffer;
  rsOwner: SharedArrayBuffer;
  rsNext: SharedArrayBuffer;
  chanIndex: SharedArrayBuffer;
  userLo: SharedArrayBuffer;
  userHi: SharedArrayBuffer;
  userHead: SharedArrayBuffer;
  userCount: SharedArrayBuffer;
  userDirty: SharedArrayBuffer;
  userPrev: SharedArrayBuffer;
  userNext: SharedArrayBuffer;
  userState: SharedArrayBuffer;
  userIndex: SharedArrayBuffer;
  userVersion: SharedArrayBuffer;
  userHorizon: SharedArrayBuffer;
  userTombHead: SharedArrayBuffer;
  tombUserLo: SharedArrayBuffer;
  tombUserHi: SharedArrayBuffer;
  tombChanLo: SharedArrayBuffer;
  tombChanHi: SharedArrayBuffer;
  tombTs: SharedArrayBuffer;
  tombBack: SharedArrayBuffer;
}

export interface ShardMemory {
  readonly capacity: number;
  readonly maxUsers: number;
  readonly header: Int32Array;
  readonly rsChanLo: Uint32Array;
  readonly rsChanHi: Uint32Array;
  readonly rsMsgLo: Uint32Array;
  readonly rsMsgHi: Uint32Array;
  readonly rsMention: Uint32Array;
  readonly rsPin: Float64Array;
  readonly rsFlags: Uint32Array;
  readonly rsVersion: Float64Array;
  readonly rsOwner: Uint32Array;
  readonly rsNext: Uint32Array;
  readonly chanIndex: Uint32Array;
  /** tag bits of a channel-index bucket (chanTagMask), and the slot + 1 bits below them */
  readonly chanTagMask: number;
  readonly chanSlotMask: number;
  readonly userLo: Uint32Array;
  readonly userHi: Uint32Array;
  readonly userHead: Uint32Array;
  readonly userCount: Uint32Array;
  readonly userDirty: Uint32Array;
  readonly userPrev: Uint32Array;
  readonly userNext: Uint32Array;
  readonly userState: Uint8Array;
  readonly userIndex: Uint32Array;
  readonly userVersion: Float64Array;
  readonly userHorizon: Float64Array;
  readonly userTombHead: Float64Array;
  readonly tombUserLo: Uint32Array;
  readonly tombUserHi: Uint32Array;
  readonly tombChanLo: Uint32Array;
  readonly tombChanHi: Uint32Array;
  readonly tombTs: Float64Array;
  readonly tombBack: Uint32Array;
  /** tombstone ring entries */
  readonly tombCapacity: number;
}

/** Buckets of an index for `entries` entries at fill `load` (at least one always empty: probes end). */
export function tableSize(entries: number, load: number): number {
  return Math.max(2, Math.ceil(entries / load) + 1);
}

/**
 * A channel-index bucket holds slot + 1 in its low bits (as few as the capacity needs) and a tag
 * of the key's hash in the bits above. This is the mask of the tag bits; it is 0 when the capacity
 * needs all 32 bits, and then every probe compares the columns.
 */
export function chanTagMask(capacity: number): number {
  const slotBits = 32 - Math.clz32(capacity);
  return slotBits >= 32 ? 0 : (~(2 ** slotBits - 1)) >>> 0;
}

function sab(bytes: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Math.max(bytes, 8));
}

/** `maxTickets`: the lane's queue bound (--max-queue): one ledger slot per ticket. */
export function allocateShardBuffers(capacity: number, maxUsers: number, maxTickets = 1 << 17): ShardBuffers {
  if (maxUsers > MAX_SHARD_USERS) throw new RangeError(`a shard holds at most ${MAX_SHARD_USERS} users`);
  const c = capacity;
  const u = maxUsers;
  return {
    capacity,
    maxUsers,
    ledger: allocateLedger(maxTickets),
    header: sab(H_WORDS * 4),
    rsChanLo: sab(c * 4),
    rsChanHi: sab(c * 4),
    rsMsgLo: sab(c * 4),
    rsMsgHi: sab(c * 4),
    rsMention: sab(c * 4),
    rsPin: sab(c * 8),
    rsFlags: sab(c * 4),
    rsVersion: sab(c * 8),
    rsOwner: sab(c * 4),
    rsNext: sab(c * 4),
    chanIndex: sab(tableSize(c, CHAN_INDEX_LOAD) * 4),
    userLo: sab(u * 4),
    userHi: sab(u * 4),
    userHead: sab(u * 4),
    userCount: sab(u * 4),
    userDirty: sab(u * 4),
    userPrev: sab(u * 4),
    userNext: sab(u * 4),
    userState: sab(u),
    userIndex: sab(tableSize(u, USER_INDEX_LOAD) * 4),
    userVersion: sab(u * 8),
    userHorizon: sab(u * 8),
    userTombHead: sab(u * 8),
    tombUserLo: sab(u * 4),
    tombUserHi: sab(u * 4),
    tombChanLo: sab(u * 4),
    tombChanHi: sab(u * 4),
    tombTs: sab(u * 8),
    tombBack: sab(u * 4),
  };
}

export function attachShardMemory(b: ShardBuffers): ShardMemory {
  const chanIndex = new Uint32Array(b.chanIndex);
  const userIndex = new Uint32Array(b.userIndex);
  return {
    capacity: b.capacity,
    maxUsers: b.maxUsers,
    header: new Int32Array(b.header),
    rsChanLo: new Uint32Array(b.rsChanLo),
    rsChanHi: new Uint32Array(b.rsChanHi),
    rsMsgLo: new Uint32Array(b.rsMsgLo),
    rsMsgHi: new Uint32Array(b.rsMsgHi),
    rsMention: new Uint32Array(b.rsMention),
    rsPin: new Float64Array(b.rsPin),
    rsFlags: new Uint32Array(b.rsFlags),
    rsVersion: new Float64Array(b.rsVersion),
    rsOwner: new Uint32Array(b.rsOwner),
    rsNext: new Uint32Array(b.rsNext),
    chanIndex,
    chanTagMask: chanTagMask(b.capacity),
    chanSlotMask: ~chanTagMask(b.capacity) >>> 0,
    userLo: new Uint32Array(b.userLo),
    userHi: new Uint32Array(b.userHi),
    userHead: new Uint32Array(b.userHead),
    userCount: new Uint32Array(b.userCount),
    userDirty: new Uint32Array(b.userDirty),
    userPrev: new Uint32Array(b.userPrev),
    userNext: new Uint32Array(b.userNext),
    userState: new Uint8Array(b.userState),
    userIndex,
    userVersion: new Float64Array(b.userVersion),
    userHorizon: new Float64Array(b.userHorizon),
    userTombHead: new Float64Array(b.userTombHead),
    tombUserLo: new Uint32Array(b.tombUserLo),
    tombUserHi: new Uint32Array(b.tombUserHi),
    tombChanLo: new Uint32Array(b.tombChanLo),
    tombChanHi: new Uint32Array(b.tombChanHi),
    tombTs: new Float64Array(b.tombTs),
    tombBack: new Uint32Array(b.tombBack),
    tombCapacity: Math.max(1, b.maxUsers),
  };
}

/** Bytes reserved (address space) for a shard of this size. */
export function shardBytes(capacity: number, maxUsers: number): number {
  return capacity * 48 + tableSize(capacity, CHAN_INDEX_LOAD) * 4 + maxUsers * (29 + 24 + 28) + tableSize(maxUsers, USER_INDEX_LOAD) * 4 + H_WORDS * 4;
}
