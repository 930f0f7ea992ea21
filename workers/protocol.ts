/**
 * Wire format between the main thread and a shard worker.
 *
 * Every message in either direction is ONE Uint32Array whose buffer is transferred (not copied):
 * a batch of operations costs one structured-clone of a flat buffer instead of one object graph per
 * operation, and the worker never sees a JS object per operation. Ids travel as two uint32 halves
 * (lo, hi); nothing on this path goes through a JS number above 2^32 or a BigInt.
 *
 * Task (main -> worker):
 *   [TASK_HEADER_WORDS header][opCount * OP_WORDS ops][load section]
 *   header: opCount, loadWords, flags (TF_*)
 *   load section: repeated [userLo, userHi, status, n, n * RS_WORDS read states]
 *
 * Reply (worker -> main):
 *   [REPLY_HEADER_WORDS header][results][load requests][store mutations]
 *   results: repeated [ticket, status, changed, n, n * RS_WORDS read states]
 *   load requests: repeated [userLo, userHi]
 *   mutations: repeated STORED_WORDS records (kind WRITE or DELETE)
 */

export const OP_GET = 1;
export const OP_GET_ALL = 2;
export const OP_ACK = 3;
export const OP_MENTION = 4;
export const OP_PATCH = 5;
export const OP_DELETE = 6;
/** A user's unread summary: one META_WORDS-like record (SUM_* offsets) */
export const OP_SUMMARY = 7;

/** Op flag bits, stored above the opcode in word 0. */
export const F_MANUAL = 1 << 8;
export const F_HAS_MSG = 1 << 9;
export const F_HAS_PIN = 1 << 10;
export const F_HAS_FLAGS = 1 << 11;
/** The caller only needs to know whether the op changed something (fan-out mentions). */
export const F_NO_BODY = 1 << 12;
/** OP_GET_ALL: only read states changed after `since` (O_PIN_LO/HI) and deletes after it */
export const F_HAS_SINCE = 1 << 13;
/** OP_GET_ALL: only channels above O_CHAN_LO/HI (the page cursor) */
export const F_HAS_AFTER = 1 << 14;
/** OP_GET_ALL: at most O_COUNT read states */
export const F_HAS_LIMIT = 1 << 15;
export const OPCODE_MASK = 0xff;

// Op layout (word offsets).
export const O_HEAD = 0;
export const O_TICKET = 1;
export const O_USER_LO = 2;
export const O_USER_HI = 3;
export const O_CHAN_LO = 4;
export const O_CHAN_HI = 5;
export const O_MSG_LO = 6;
export const O_MSG_HI = 7;
/** ack: mention_count; mention: count */
export const O_COUNT = 8;
/** last_pin_timestamp as low 32 bits and high 21 bits */
export const O_PIN_LO = 9;
export const O_PIN_HI = 10;
export const O_FLAGS = 11;
export const OP_WORDS = 12;

// Read state layout inside a result (word offsets).
export const R_CHAN_LO = 0;
export const R_CHAN_HI = 1;
export const R_MSG_LO = 2;
export const R_MSG_HI = 3;
export const R_MENTION = 4;
export const R_PIN_LO = 5;
export const R_PIN_HI = 6;
export const R_FLAGS = 7;
export const R_VER_LO = 8;
export const R_VER_HI = 9;
export const RS_WORDS = 10;

/**
 * OP_GET_ALL answers n records of RS_WORDS words: first one meta record (M_* offsets), then
 * M_RS_COUNT read states ordered by channel, then the deleted channel ids packed DEL_PER_RECORD
 * to a record (lo, hi pairs). The reader needs no other framing than RES_COUNT.
 */
export const M_VER_LO = 0;
export const M_VER_HI = 1;
/** 1: the answer is the whole set (no since, or since below the user's tombstone horizon) */
export const M_FULL = 2;
export const M_RS_COUNT = 3;
export const M_DEL_COUNT = 4;
/** 1: more read states remain after the last one returned (the next page starts after it) */
export const M_MORE = 5;
export const DEL_PER_RECORD = 5;

/** OP_SUMMARY answers one record of RS_WORDS words: */
export const SUM_VER_LO = 0;
export const SUM_VER_HI = 1;
export const SUM_READ_STATES = 2;
export const SUM_MENTIONS_LO = 3;
export const SUM_MENTIONS_HI = 4;
export const SUM_CHANNELS_WITH_MENTIONS = 5;

/**
 * In what a store's load() returns (and the load sections built from it), a record whose R_PIN_HI
 * word is TOMB_PIN_HI is a tombstone, not a read state: the channel was deleted, and R_VER is the
 * delete's timestamp. A pin is below 2^53, so its high word never has these bits (every other
 * word of a read state may take any value). A tombstone of channel 0 (no channel has id 0) is the
 * horizon: deletes at or before its R_VER may be missing from the tombstones returned.
 */
export const TOMB_PIN_HI = 0xffffffff;

// Result record header.
export const RES_TICKET = 0;
export const RES_STATUS = 1;
export const RES_CHANGED = 2;
export const RES_COUNT = 3;
export const RES_HEADER_WORDS = 4;

/**
 * A read state as the store sees it: a mutation kind, the user, the read state, and the write
 * timestamp (microseconds, strictly increasing per shard) that orders writes in the store: a
 * late, older write can never overwrite a newer one (Cassandra's USING TIMESTAMP).
 */
export const S_KIND = 0;
export const S_USER_LO = 1;
export const S_USER_HI = 2;
/** followed by RS_WORDS read-state words */
export const S_RS = 3;
export const S_TS_LO = S_RS + RS_WORDS;
export const S_TS_HI = S_TS_LO + 1;
export const STORED_WORDS = S_TS_HI + 1;
export const KIND_WRITE = 1;
export const KIND_DELETE = 2;

/** A task whose op count is STATS_TASK asks for the shard's figures instead (a ShardStats object). */
export const STATS_TASK = 0xffffffff;

export const TASK_OP_COUNT = 0;
export const TASK_LOAD_WORDS = 1;
export const TASK_FLAGS = 2;
export const TASK_HEADER_WORDS = 3;

/** Task flags. */
/** Write out read states whose first unflushed change is older than the flush delay. */
export const TF_FLUSH_DUE = 1;
/** Write out every dirty read state now (shutdown). */
export const TF_FLUSH_ALL = 2;
/**
 * The store is failing or its backlog is full: take no new snapshots, and evict only users with
 * nothing unflushed (if there are none, refuse what would need room with ST_STORE_BACKLOG).
 */
export const TF_STORE_DEGRADED = 4;
/**
 * Fault injection: the worker exits once this batch is applied, before its journal write and its
 * reply (the latest moment a crash loses the batch's store records: evictions, deletes, snapshots).
 */
export const TF_FAULT_EXIT_AFTER_APPLY = 8;
/**
 * The write-behind holds --max-pending-writes records: a delete, whose store record would be one
 * more, is refused with ST_STORE_BACKLOG (not applied) until the store catches up.
 */
export const TF_PENDING_FULL = 16;
/** Fault injection: the worker dies inside the batch's second op, the first one applied. */
export const TF_FAULT_EXIT_IN_SECOND_OP = 32;
/** Hand over the next slice of what an earlier flush found due (REPLY_FLUSH_BEHIND). */
export const TF_FLUSH_BEHIND = 64;

export const REPLY_RESULT_WORDS = 0;
export const REPLY_LOAD_WORDS = 1;
export const REPLY_MUTATION_WORDS = 2;
/** read states still dirty in the shard after this batch */
export const REPLY_DIRTY = 3;
/** 1 when the batch failed in the worker: no results (its operations get a retryable 503) */
export const REPLY_FAILED = 4;
/** the shard's oldest journal segment still needed by its dirty read states (journal.ts) */
export const REPLY_JOURNAL_FLOOR = 5;
/** 1 when read states are due that this batch left for the next one (ask again next turn) */
export const REPLY_FLUSH_BEHIND = 6;
export const REPLY_HEADER_WORDS = 7;

/** Load section status: the store answered, or could not (the parked ops fail with 503). */
export const LOAD_OK = 0;
export const LOAD_FAILED = 1;

/** HTTP-like statuses carried in results. */
export const ST_OK = 200;
export const ST_NO_CONTENT = 204;
export const ST_NOT_FOUND = 404;
export const ST_UNAVAILABLE = 503;
export const ST_INSUFFICIENT_STORAGE = 507;
/** Answered as HTTP 503: the cache is full of changes the store has not taken yet. */
export const ST_STORE_BACKLOG = 599;
/** Answered as HTTP 507: the user already has --max-read-states-per-user read states. */
export const ST_USER_LIMIT = 598;
/** Answered as HTTP 503 SHARD_RESTARTED: the shard worker died before it applied the op. */
export const ST_NOT_APPLIED = 597;

/** The HTTP status a result status is answered with. */
export function httpStatusOf(status: number): number {
  if (status === ST_STORE_BACKLOG) return ST_UNAVAILABLE;
  if (status === ST_USER_LIMIT) return ST_INSUFFICIENT_STORAGE;
  if (status === ST_NOT_APPLIED) return ST_UNAVAILABLE;
  return status;
}

const TWO_32 = 4294967296;

/** Splits a non-negative integer < 2^53 into the two words used for pins and versions. */
export function lo32(n: number): number {
  return n % TWO_32 >>> 0;
}
export function hi32(n: number): number {
  return Math.floor(n / TWO_32) >>> 0;
}
export function join53(lo: number, hi: number): number {
  return hi * TWO_32 + lo;
}

import type { JournalCounters } from './journal.js';
import type { ThreadTelemetry } from './thread-telemetry.js';

/** Figures a shard reports about itself (a plain object: asked for rarely, never per operation). */
export interface ShardStats {
  shard: number;
  readStates: number;
  users: number;
  capacity: number;
  maxUsers: number;
  dirty: number;
  /** age in ms of the oldest change not yet handed to the store (0 if none) */
  oldestDirtyMs: number;
  loading: number;
  hits: number;
  misses: number;
  loads: number;
  evictions: number;
  rejectedFull: number;
  flushed: number;
  heapUsed: number;
  heapTotal: number;
  telemetry: ThreadTelemetry;
  /** the redo journal's figures; null without a durable store */
  journal: JournalCounters | null;
  /** times this shard saw the wall clock step back (kept across worker replacements) */
  clockStepsBack: number;
}
