/**
 * Wire format between the main thread and a shard worker.
 *
 * Every message in either direction is ONE Uint32Array whose buffer is transferred (not copied):
 * a batch of operations costs one structured-clone of a flat buffer instead of one object graph per
 * operation, and the worker never sees a JS object per operation. Ids travel as two uint32 halves
 * (lo, hi); nothing on this path goes through a JS number above 2^32 or a BigInt.
 *
 * Task (main -> worker, on the shard's ops port; a STATS_TASK or a ping as a piscina task):
 *   [TaskWord.HeaderSize header][opCount * OpWord.Size ops]
 *   header: opCount, flags (TaskFlag), batch number, and for a STATS_TASK its StatsFlag bits
 *
 * Reply (worker -> main, on the shard's results port, in the order the worker sends them): the
 * answer to a task (its batch number), or pushed when loads completed parked operations (0):
 *   [ReplyWord.HeaderSize header][results]
 *   results: repeated [ticket, status, changed, n, n * RsWord.Size read states]
 *
 * Store messages (shard <-> store host, on the MessagePort between them; StoreMsgWord header):
 *   StoreMsg.Records (shard -> host): count StoredWord.Size records (RecordKind.Write or Delete)
 *   StoreMsg.Loads (shard -> host): count users as [userLo, userHi] pairs
 *   StoreMsg.Answers (host -> shard): a load section, count words long:
 *     repeated [userLo, userHi, status (LoadStatus), n, n * RsWord.Size read states]
 *
 * The constants are grouped as const enums: tsc inlines every use, so a field offset costs what a
 * literal costs, and each group names one layout or one set of values.
 */

export const enum Opcode {
  Get = 1,
  GetAll = 2,
  Ack = 3,
  Mention = 4,
  Patch = 5,
  Delete = 6,
  /** A user's unread summary: one record of SummaryWord offsets */
  Summary = 7,
  /** the opcode's bits in word 0 (OpFlag bits above them) */
  Mask = 0xff,
}

/** Op flag bits, stored above the opcode in word 0. */
export const enum OpFlag {
  Manual = 1 << 8,
  HasMsg = 1 << 9,
  HasPin = 1 << 10,
  HasFlags = 1 << 11,
  /** The caller only needs to know whether the op changed something (fan-out mentions). */
  NoBody = 1 << 12,
  /** Opcode.GetAll: only read states changed after `since` (OpWord.PinLo/HI) and deletes after it */
  HasSince = 1 << 13,
  /** Opcode.GetAll: only channels above OpWord.ChanLo/HI (the page cursor) */
  HasAfter = 1 << 14,
  /** Opcode.GetAll: at most OpWord.Count read states */
  HasLimit = 1 << 15,
}

// Op layout (word offsets).
export const enum OpWord {
  Head = 0,
  Ticket = 1,
  UserLo = 2,
  UserHi = 3,
  ChanLo = 4,
  ChanHi = 5,
  MsgLo = 6,
  MsgHi = 7,
  /** ack: mention_count; mention: count */
  Count = 8,
  /** last_pin_timestamp as low 32 bits and high 21 bits */
  PinLo = 9,
  PinHi = 10,
  Flags = 11,
  Size = 12,
}

// Read state layout inside a result (word offsets).
export const enum RsWord {
  ChanLo = 0,
  ChanHi = 1,
  MsgLo = 2,
  MsgHi = 3,
  Mention = 4,
  PinLo = 5,
  PinHi = 6,
  Flags = 7,
  VerLo = 8,
  VerHi = 9,
  Size = 10,
}

/**
 * Opcode.GetAll answers n records of RsWord.Size words: first one meta record (ListMetaWord offsets), then
 * ListMetaWord.RsCount read states ordered by channel, then the deleted channel ids packed ListMetaWord.DeletesPerRecord
 * to a record (lo, hi pairs). The reader needs no other framing than ResultWord.Count.
 */
export const enum ListMetaWord {
  VerLo = 0,
  VerHi = 1,
  /** 1: the answer is the whole set (no since, or since below the user's tombstone horizon) */
  Full = 2,
  RsCount = 3,
  DelCount = 4,
  /** 1: more read states remain after the last one returned (the next page starts after it) */
  More = 5,
  /** not an offset: deleted channel ids per record after the read states */
  DeletesPerRecord = 5,
}

/** Opcode.Summary answers one record of RsWord.Size words: */
export const enum SummaryWord {
  VerLo = 0,
  VerHi = 1,
  ReadStates = 2,
  MentionsLo = 3,
  MentionsHi = 4,
  ChannelsWithMentions = 5,
}

/**
 * In what a store's load() returns (and the load sections built from it), a record whose RsWord.PinHi
 * word is TOMB_PIN_HI is a tombstone, not a read state: the channel was deleted, and RsWord.VerLo/Hi is the
 * delete's timestamp. A pin is below 2^53, so its high word never has these bits (every other
 * word of a read state may take any value). A tombstone of channel 0 (no channel has id 0) is the
 * horizon: deletes at or before its version may be missing from the tombstones returned.
 */
export const TOMB_PIN_HI = 0xffffffff;

// Result record header.
export const enum ResultWord {
  Ticket = 0,
  Status = 1,
  Changed = 2,
  Count = 3,
  HeaderSize = 4,
}

/**
 * A read state as the store sees it: a mutation kind, the user, the read state, and the write
 * timestamp (microseconds, strictly increasing per shard) that orders writes in the store: a
 * late, older write can never overwrite a newer one (Cassandra's USING TIMESTAMP).
 */
export const enum StoredWord {
  Kind = 0,
  UserLo = 1,
  UserHi = 2,
  /** followed by RsWord.Size read-state words */
  Rs = 3,
  TsLo = Rs + RsWord.Size,
  TsHi = TsLo + 1,
  Size = TsHi + 1,
}
export const enum RecordKind {
  Write = 1,
  Delete = 2,
}

/** A task whose op count is STATS_TASK asks for the shard's figures instead (a ShardStats object). */
export const STATS_TASK = 0xffffffff;

export const enum TaskWord {
  OpCount = 0,
  /** StatsFlag bits of a STATS_TASK */
  Stats = 1,
  Flags = 2,
  /** the batch's number on the shard's ops port (1, 2, ...), echoed in ReplyWord.Batch */
  Batch = 3,
  HeaderSize = 4,
}

/** What a STATS_TASK asks for besides the figures. */
export const enum StatsFlag {
  /** run a full GC first, so that heap figures show what is live */
  Collect = 1,
  /** start a new event-loop delay window */
  ResetDelay = 2,
}

/** Task flags. */
export const enum TaskFlag {
  /** Write out read states whose first unflushed change is older than the flush delay. */
  FlushDue = 1,
  /** Write out every dirty read state now (shutdown). */
  FlushAll = 2,
  /**
   * Fault injection: the worker exits once this batch is applied, before its journal write and its
   * reply (the latest moment a crash loses the batch's store records: evictions, deletes, snapshots).
   */
  FaultExitAfterApply = 8,
  /** Fault injection: the worker dies inside the second op of the batch (crash-ledger tests). */
  FaultExitInSecondOp = 32,
  /** Hand over the next slice of what an earlier flush found due (ReplyWord.FlushBehind). */
  FlushBehind = 64,
  /** Cluster mode: drop, unwritten, the cached users of partitions the fence marks to drop (Fence.dropsUser). */
  DiscardUsers = 128,
}

export const enum ReplyWord {
  ResultWords = 0,
  /** read states still dirty in the shard after this batch */
  Dirty = 1,
  /** 1 when the batch failed in the worker: no results (its operations get a retryable 503) */
  Failed = 2,
  /** the shard's oldest journal segment still needed by its dirty read states (journal.ts) */
  JournalFloor = 3,
  /** 1 when read states are due that this batch left for the next one (ask again next turn) */
  FlushBehind = 4,
  /** the TaskWord.Batch of the task this answers; 0 for answers pushed after loads */
  Batch = 5,
  HeaderSize = 6,
}

/** Header of a message between a shard and the store host. */
export const enum StoreMsgWord {
  Kind = 0,
  /** the shard's message number (shard -> host; shard-memory.ts H_STORE_SEQ) */
  Seq = 1,
  /** records, users or words that follow, by kind (StoreMsg.Answers: a load section, see below) */
  Count = 2,
  HeaderSize = 3,
}

export const enum StoreMsg {
  Records = 1,
  Loads = 2,
  Answers = 3,
}

/** Load section status: the store answered, or could not (the parked ops fail with 503). */
export const enum LoadStatus {
  Ok = 0,
  Failed = 1,
}

/** HTTP-like statuses carried in results. */
export const enum ResultStatus {
  Ok = 200,
  NoContent = 204,
  NotFound = 404,
  Unavailable = 503,
  InsufficientStorage = 507,
  /** Answered as HTTP 503: the cache is full of changes the store has not taken yet. */
  StoreBacklog = 599,
  /** Answered as HTTP 507: the user already has --max-read-states-per-user read states. */
  UserLimit = 598,
  /** Answered as HTTP 503 SHARD_RESTARTED: the shard worker died before it applied the op. */
  NotApplied = 597,
}

/** The HTTP status a result status is answered with. */
export function httpStatusOf(status: number): number {
  if (status === ResultStatus.StoreBacklog) return ResultStatus.Unavailable;
  if (status === ResultStatus.UserLimit) return ResultStatus.InsufficientStorage;
  if (status === ResultStatus.NotApplied) return ResultStatus.Unavailable;
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
