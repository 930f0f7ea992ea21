/**
 * The shard engine: applies encoded operations to the slabs of one shard.
 *
 * Everything here runs on the shard worker's single thread, one operation at a time, in arrival
 * order, so counters are updated without locks. The hot functions (applyOp and the per-op
 * handlers) touch only typed arrays and numbers; the rare paths (miss, eviction, load install,
 * sorting a user's channels) are separate functions so the hot ones stay small and optimisable.
 *
 * A miss never waits: the user gets a LOADING slot, the operation is parked, and a load request
 * goes out with the batch reply. When the main thread sends the user's stored read states back,
 * they are installed and the parked operations replay in arrival order.
 */
import { GrowBuffer, SharedGrowBuffer, type WordBuffer } from './grow-buffer.js';
import { HybridClock } from './hybrid-clock.js';
import { FRAME_HEADER_WORDS } from './journal-format.js';
import { DirtyRing } from './dirty-ring.js';
import { ParkedOps } from './parked-ops.js';
import { chanFind, chanIndexInsert, chanIndexRemove, userFind, userIndexInsert, userIndexRemove } from './hash-index.js';
import { lruAppend, lruHead, lruTouch, lruUnlink } from './lru.js';
import { ListMetaWord, LoadStatus, OpFlag, OpWord, Opcode, RecordKind, ResultStatus, ResultWord, RsWord, StoredWord, SummaryWord, TOMB_PIN_HI, hi32, join53, lo32 } from './protocol.js';
import type { LedgerBuffers } from './crash-ledger.js';
import {
  H_DIRTY,
  H_EXECUTING,
  H_EXECUTING_TICKET,
  H_LEDGER_JOURNAL_LEN,
  H_TOMB_POS_HI,
  H_TOMB_POS_LO,
  NIL,
  RS_DIRTY_BIT,
  RS_OWNER_BITS,
  rsDirty,
  rsLive,
  rsOwnerOf,
  H_RS_HWM,
  H_USER_HWM,
  USER_LOADING,
  USER_RESIDENT,
  type ShardMemory,
} from './shard-memory.js';
import { rsAlloc, rsRelease, userAlloc, userRelease } from './slots.js';

export const MAX_MENTIONS = 0x7fffffff;

export interface EngineCounters {
  hits: number;
  misses: number;
  loads: number;
  evictions: number;
  rejectedFull: number;
  /** read states handed to the store by the write-behind timer (not by evictions) */
  flushed: number;
  /** users dropped unwritten because their cluster partition moved (discardUsers) */
  discarded: number;
}

export interface EngineOptions {
  /** ms from a read state's first unflushed change to its write; 0 = at the end of each batch */
  flushDelayMs: number;
  /**
   * At most this many read states are snapshotted per batch by the write-behind timer; the rest of
   * what is due goes with the next batches (flushBehind), so that a due wave reaches the main
   * thread and the store in slices of about a millisecond of work each, not in one long turn.
   */
  flushBatchMax?: number;
  /** injectable clock (ms) */
  now?: () => number;
  /** write timestamps; by default a clock over `now` that starts at 0 and reserves nothing */
  clock?: HybridClock;
  /** record every change in `journal` (the worker appends it to the redo journal per batch) */
  journaling?: boolean;
  /** a user with this many read states gets no new one (ResultStatus.UserLimit); default: no limit */
  maxReadStatesPerUser?: number;
  /** the crash ledger (crash-ledger.ts): completion marks per ticket, the journal in shared memory */
  ledger?: LedgerBuffers;
}

/** Write-behind marks kept: one per timer tick with new dirty read states. */
const MARKS = 1024;
/** LRU users examined for a clean victim before a dirty one is evicted. */
const CLEAN_SCAN = 8;
/** ...and while the store is degraded (only clean users may go): a bounded search. */
const CLEAN_SCAN_DEGRADED = 4096;

export class ShardEngine {
  readonly m: ShardMemory;
  /** result records of this batch: [ticket, status, changed, n, n * RsWord.Size] */
  readonly results = new GrowBuffer(4096);
  /** users to load: [lo, hi] pairs */
  readonly loadRequests = new GrowBuffer(64);
  /** read states the store must write or delete: StoredWord.Size each */
  readonly mutations = new GrowBuffer(1024);
  /**
   * This batch's changes for the redo journal: FRAME_HEADER_WORDS of room for the frame header,
   * then one StoredWord.Size record per change (the read state after it, or a delete).
   */
  readonly journal: WordBuffer;
  journalRecords = 0;
  /** crash ledger views, or null (tests and benches without one) */
  private readonly done: Uint32Array | null;
  private readonly outcome: Uint32Array | null;
  private readonly journaling: boolean;
  private readonly maxPerUser: number;
  readonly clock: HybridClock;
  readonly counters: EngineCounters = { hits: 0, misses: 0, loads: 0, evictions: 0, rejectedFull: 0, flushed: 0, discarded: 0 };
  /** Set per batch from the task flags: the store cannot take more right now. */
  degraded = false;
  /** Set per batch from the task flags: no room for one more store record (deletes wait). */
  pendingFull = false;
  readonly flushDelayMs: number;
  private readonly flushBatchMax: number;
  private readonly now: () => number;
  /**
   * Slots in the order they became dirty. A slot freed while dirty leaves a stale entry, which is
   * skipped (or flushes a reused slot early, which is harmless) when popped.
   */
  private readonly dirtyRing: DirtyRing;
  /** Timer marks: dirty-queue position and time of each tick; entries before markPos[i] are due at markTime[i] + delay. */
  private readonly markPos = new Float64Array(MARKS);
  private readonly markTime = new Float64Array(MARKS);
  private markFirst = 0;
  private markCount = 0;
  /**
   * Queue position up to which entries are due. Kept across ticks: a tick capped at flushBatchMax
   * leaves the rest of a due batch for the next tick, and the marks that made it due are gone.
   */
  private dueUntil = 0;
  /** Why the last allocRs failed: ResultStatus.InsufficientStorage or ResultStatus.StoreBacklog. */
  private allocFailure = ResultStatus.InsufficientStorage;
  /** Operations waiting for their user's load, by user slot. Only users being loaded are here. */
  private readonly parked: ParkedOps;
  /** Users in the LOADING state. */
  private loadingUsers = 0;

  /**
   * Misses that found every user slot taken by users being loaded (rare: a burst of new users on
   * a small cache). They wait here, in arrival order, until a load completes.
   */
  private readonly waiting = new GrowBuffer(OpWord.Size * 16);
  private waitingHead = 0;
  private sortScratch = new Uint32Array(256);
  /** deleted channel ids gathered for one delta answer (lo, hi pairs) */
  private delScratch = new Uint32Array(64);
  /** tombstone ring entries ever written (mirrored in the header for a replacement worker) */
  private tombPos: number;

  constructor(m: ShardMemory, options: EngineOptions = { flushDelayMs: 0 }) {
    this.m = m;
    this.parked = new ParkedOps(m.maxUsers);
    this.dirtyRing = new DirtyRing(m.capacity);
    this.flushDelayMs = options.flushDelayMs;
    this.flushBatchMax = options.flushBatchMax ?? 2048;
    this.now = options.now ?? Date.now;
    this.clock = options.clock ?? new HybridClock({ header: m.header, now: this.now, floorUs: 0, reservationFile: null, fsync: false });
    this.journaling = options.journaling ?? false;
    const ledger = options.ledger;
    this.journal = ledger === undefined ? new GrowBuffer(1024) : new SharedGrowBuffer(ledger.journal);
    this.done = ledger === undefined ? null : new Uint32Array(ledger.done);
    this.outcome = ledger === undefined ? null : new Uint32Array(ledger.outcome);
    this.maxPerUser = options.maxReadStatesPerUser ?? 0xffffffff;
    this.journal.len = FRAME_HEADER_WORDS;
    m.header[H_LEDGER_JOURNAL_LEN] = FRAME_HEADER_WORDS;
    this.tombPos = join53(m.header[H_TOMB_POS_LO] >>> 0, m.header[H_TOMB_POS_HI] >>> 0);
  }

  /** Positions of the dirty queue (the journal maps them to its segments). */
  get dirtyHead(): number {
    return this.dirtyRing.head;
  }

  get dirtyTail(): number {
    return this.dirtyRing.tail;
  }

  applyOps(ops: Uint32Array, off: number, count: number): void {
    for (let i = 0; i < count; i++) this.applyOp(ops, off + i * OpWord.Size);
  }

  applyOp(ops: Uint32Array, o: number): void {
    const m = this.m;
    const u = userFind(m, ops[o + OpWord.UserLo], ops[o + OpWord.UserHi]);
    if (u === NIL) {
      this.miss(ops, o);
      return;
    }
    if (m.userState[u] === USER_LOADING) {
      this.park(u, ops, o);
      return;
    }
    this.counters.hits++;
    lruTouch(m, u);
    this.execute(u, ops, o);
  }

  private execute(u: number, ops: Uint32Array, o: number): void {
    const h = this.m.header;
    // If the worker dies inside this op, it is the one whose changes may be half made.
    h[H_EXECUTING_TICKET] = ops[o + OpWord.Ticket];
    h[H_EXECUTING] = 1;
    this.dispatch(u, ops, o);
    h[H_EXECUTING] = 0;
  }

  private dispatch(u: number, ops: Uint32Array, o: number): void {
    const head = ops[o + OpWord.Head];
    switch (head & Opcode.Mask) {
      case Opcode.Get:
        this.get(u, ops, o, head);
        break;
      case Opcode.GetAll:
        this.getAll(u, ops, o, head);
        break;
      case Opcode.Summary:
        this.summary(u, ops[o + OpWord.Ticket]);
        break;
      case Opcode.Ack:
        this.ack(u, ops, o, head);
        break;
      case Opcode.Mention:
        this.mention(u, ops, o, head);
        break;
      case Opcode.Patch:
        this.patch(u, ops, o, head);
        break;
      case Opcode.Delete:
        this.remove(u, ops, o);
        break;
      default:
        this.status(ops[o + OpWord.Ticket], ResultStatus.NotFound, 0);
    }
  }

  private get(u: number, ops: Uint32Array, o: number, head: number): void {
    const s = chanFind(this.m, u, ops[o + OpWord.ChanLo], ops[o + OpWord.ChanHi]);
    if (s === NIL) this.status(ops[o + OpWord.Ticket], ResultStatus.NotFound, 0);
    else this.finish(ops[o + OpWord.Ticket], s, false, head);
  }

  private ack(u: number, ops: Uint32Array, o: number, head: number): void {
    const m = this.m;
    const s = this.findOrCreate(u, ops[o + OpWord.ChanLo], ops[o + OpWord.ChanHi]);
    if (s === NIL) return this.full(ops[o + OpWord.Ticket]);
    let changed = m.rsVersion[s] === 0;
    const lo = ops[o + OpWord.MsgLo];
    const hi = ops[o + OpWord.MsgHi];
    const count = ops[o + OpWord.Count];
    if ((head & OpFlag.Manual) !== 0) {
      if (m.rsMsgLo[s] !== lo || m.rsMsgHi[s] !== hi || m.rsMention[s] !== count) {
        m.rsMsgLo[s] = lo;
        m.rsMsgHi[s] = hi;
        m.rsMention[s] = count;
        changed = true;
      }
    } else if (hi > m.rsMsgHi[s] || (hi === m.rsMsgHi[s] && lo > m.rsMsgLo[s])) {
      m.rsMsgLo[s] = lo;
      m.rsMsgHi[s] = hi;
      m.rsMention[s] = count;
      changed = true;
    }
    this.finish(ops[o + OpWord.Ticket], s, changed, head);
  }

  private mention(u: number, ops: Uint32Array, o: number, head: number): void {
    const m = this.m;
    const s = this.findOrCreate(u, ops[o + OpWord.ChanLo], ops[o + OpWord.ChanHi]);
    if (s === NIL) return this.full(ops[o + OpWord.Ticket]);
    let changed = m.rsVersion[s] === 0;
    const hi = ops[o + OpWord.MsgHi];
    const lo = ops[o + OpWord.MsgLo];
    // A mention of a message the user has already read (an ack overtook it) must not count.
    const unread =
      (head & OpFlag.HasMsg) === 0 || hi > m.rsMsgHi[s] || (hi === m.rsMsgHi[s] && lo > m.rsMsgLo[s]);
    if (unread) {
      const before = m.rsMention[s];
      const after = Math.min(MAX_MENTIONS, before + ops[o + OpWord.Count]);
      if (after !== before) {
        m.rsMention[s] = after;
        changed = true;
      }
    }
    this.finish(ops[o + OpWord.Ticket], s, changed, head);
  }

  private patch(u: number, ops: Uint32Array, o: number, head: number): void {
    const m = this.m;
    const s = this.findOrCreate(u, ops[o + OpWord.ChanLo], ops[o + OpWord.ChanHi]);
    if (s === NIL) return this.full(ops[o + OpWord.Ticket]);
    let changed = m.rsVersion[s] === 0;
    if ((head & OpFlag.HasPin) !== 0) {
      const pin = join53(ops[o + OpWord.PinLo], ops[o + OpWord.PinHi]);
      if (pin > m.rsPin[s]) {
        m.rsPin[s] = pin;
        changed = true;
      }
    }
    if ((head & OpFlag.HasFlags) !== 0 && m.rsFlags[s] !== ops[o + OpWord.Flags]) {
      m.rsFlags[s] = ops[o + OpWord.Flags];
      changed = true;
    }
    this.finish(ops[o + OpWord.Ticket], s, changed, head);
  }

  private remove(u: number, ops: Uint32Array, o: number): void {
    const m = this.m;
    const s = chanFind(m, u, ops[o + OpWord.ChanLo], ops[o + OpWord.ChanHi]);
    if (s === NIL) {
      this.status(ops[o + OpWord.Ticket], ResultStatus.NotFound, 0);
      return;
    }
    if (this.pendingFull) {
      this.status(ops[o + OpWord.Ticket], ResultStatus.StoreBacklog, 0);
      return;
    }
    // Unlink from the user's list: lists are short (a user's channels) and deletes are rare.
    let prev = NIL;
    let cur = m.userHead[u];
    while (cur !== s) {
      prev = cur;
      cur = m.rsNext[cur];
    }
    if (prev === NIL) m.userHead[u] = m.rsNext[s];
    else m.rsNext[prev] = m.rsNext[s];
    m.userCount[u]--;
    const at = this.emitStored(RecordKind.Delete, u, s);
    if (this.journaling) this.journalCopy(at);
    // The delete's timestamp is the user's version now, and its tombstone's (the delta reports it).
    const ts = join53(this.mutations.buf[at + StoredWord.TsLo], this.mutations.buf[at + StoredWord.TsHi]);
    if (ts > m.userVersion[u]) m.userVersion[u] = ts;
    this.pushTomb(u, m.rsChanLo[s], m.rsChanHi[s], ts);
    this.dropRs(s);
    this.status(ops[o + OpWord.Ticket], ResultStatus.NoContent, 1);
  }

  /** Bumps the version of a changed read state, marks it dirty, and writes the result record. */
  private finish(ticket: number, s: number, changed: boolean, head: number): void {
    const m = this.m;
    if (changed) {
      // A version is the timestamp of the change: it increases with every change of this read
      // state, and the user's version (their latest change) is a filter value for deltas.
      const v = this.clock.next();
      m.rsVersion[s] = v;
      const owner = rsOwnerOf(m, s);
      if (v > m.userVersion[owner]) m.userVersion[owner] = v;
      if (!rsDirty(m, s)) this.setDirty(s);
      if (this.journaling) this.journalWrite(s);
    }
    const withBody = (head & OpFlag.NoBody) === 0;
    const r = this.results;
    const at = r.reserve(ResultWord.HeaderSize + (withBody ? RsWord.Size : 0));
    const b = r.buf;
    b[at] = ticket;
    b[at + 1] = ResultStatus.Ok;
    b[at + 2] = changed ? 1 : 0;
    b[at + 3] = withBody ? 1 : 0;
    if (withBody) this.writeRs(b, at + ResultWord.HeaderSize, s);
    if (this.done !== null) this.markDone(ticket, ResultStatus.Ok, changed ? 1 : 0);
  }

  /** The op on this ticket is applied whole and has its result (crash-ledger.ts). */
  private markDone(ticket: number, status: number, changed: number): void {
    const i = ticket & 0xffffff;
    const done = this.done!;
    if (i >= done.length) return;
    this.outcome![i] = status | (changed << 16);
    done[i] = ticket;
  }

  private status(ticket: number, status: number, changed: number): void {
    const r = this.results;
    const at = r.reserve(ResultWord.HeaderSize);
    const b = r.buf;
    b[at] = ticket;
    b[at + 1] = status;
    b[at + 2] = changed;
    b[at + 3] = 0;
    if (this.done !== null) this.markDone(ticket, status, changed);
  }

  private full(ticket: number): void {
    this.counters.rejectedFull++;
    this.status(ticket, this.allocFailure, 0);
  }

  private setDirty(s: number): void {
    const m = this.m;
    m.rsOwner[s] |= RS_DIRTY_BIT;
    m.header[H_DIRTY]++;
    m.userDirty[rsOwnerOf(m, s)]++;
    if (!this.dirtyRing.room()) this.popDirty(); // full of stale entries
    this.dirtyRing.push(s);
  }

  private clearDirty(s: number): void {
    const m = this.m;
    m.rsOwner[s] &= RS_OWNER_BITS;
    m.header[H_DIRTY]--;
    m.userDirty[rsOwnerOf(m, s)]--;
  }

  private writeRs(b: Uint32Array, at: number, s: number): void {
    const m = this.m;
    b[at + RsWord.ChanLo] = m.rsChanLo[s];
    b[at + RsWord.ChanHi] = m.rsChanHi[s];
    b[at + RsWord.MsgLo] = m.rsMsgLo[s];
    b[at + RsWord.MsgHi] = m.rsMsgHi[s];
    b[at + RsWord.Mention] = m.rsMention[s];
    const pin = m.rsPin[s];
    b[at + RsWord.PinLo] = lo32(pin);
    b[at + RsWord.PinHi] = hi32(pin);
    b[at + RsWord.Flags] = m.rsFlags[s];
    const v = m.rsVersion[s];
    b[at + RsWord.VerLo] = lo32(v);
    b[at + RsWord.VerHi] = hi32(v);
  }

  /** Finds the read state, or creates an empty one (version 0 until its first change). */
  private findOrCreate(u: number, lo: number, hi: number): number {
    const m = this.m;
    const found = chanFind(m, u, lo, hi);
    if (found !== NIL) return found;
    if (m.userCount[u] >= this.maxPerUser) {
      this.allocFailure = ResultStatus.UserLimit;
      return NIL;
    }
    const s = this.allocRs(u);
    if (s === NIL) return NIL;
    m.rsChanLo[s] = lo;
    m.rsChanHi[s] = hi;
    m.rsMsgLo[s] = 0;
    m.rsMsgHi[s] = 0;
    m.rsMention[s] = 0;
    m.rsPin[s] = 0;
    m.rsFlags[s] = 0;
    m.rsVersion[s] = 0;
    this.linkRs(u, s);
    return s;
  }

  /** Called once the slot's fields are written: LIVE marks it for recovery (recovery.ts). */
  private linkRs(u: number, s: number): void {
    const m = this.m;
    m.rsOwner[s] = u + 1;
    m.rsNext[s] = m.userHead[u];
    m.userHead[u] = s;
    m.userCount[u]++;
    chanIndexInsert(m, s);
  }

  private dropRs(s: number): void {
    const m = this.m;
    if (rsDirty(m, s)) this.clearDirty(s);
    chanIndexRemove(m, s);
    rsRelease(m, s);
  }

  /** Appends a store record for slot `s` to the mutations; returns its offset there. */
  private emitStored(kind: number, u: number, s: number): number {
    const mu = this.mutations;
    const at = mu.reserve(StoredWord.Size);
    this.writeStored(mu.buf, at, kind, u, s);
    return at;
  }

  private writeStored(b: Uint32Array, at: number, kind: number, u: number, s: number): void {
    b[at + StoredWord.Kind] = kind;
    b[at + StoredWord.UserLo] = this.m.userLo[u];
    b[at + StoredWord.UserHi] = this.m.userHi[u];
    this.writeRs(b, at + StoredWord.Rs, s);
    const ts = this.clock.next();
    b[at + StoredWord.TsLo] = lo32(ts);
    b[at + StoredWord.TsHi] = hi32(ts);
  }

  /** The read state after a change, for the redo journal. */
  private journalWrite(s: number): void {
    const j = this.journal;
    const at = j.reserve(StoredWord.Size);
    this.writeStored(j.buf, at, RecordKind.Write, rsOwnerOf(this.m, s), s);
    this.journalRecords++;
    this.m.header[H_LEDGER_JOURNAL_LEN] = j.len;
  }

  /** A delete goes to the journal as the same record (and timestamp) the store gets. */
  private journalCopy(mutationAt: number): void {
    const j = this.journal;
    const at = j.reserve(StoredWord.Size);
    j.buf.set(this.mutations.buf.subarray(mutationAt, mutationAt + StoredWord.Size), at);
    this.journalRecords++;
    this.m.header[H_LEDGER_JOURNAL_LEN] = j.len;
  }

  // ---- write-behind ------------------------------------------------------------------------

  /** Snapshots the oldest dirty-queue entry into the mutations, if it is still dirty. */
  private popDirty(): void {
    const m = this.m;
    const s = this.dirtyRing.shift();
    if (!rsDirty(m, s)) return;
    this.emitStored(RecordKind.Write, rsOwnerOf(m, s), s);
    this.clearDirty(s);
    this.counters.flushed++;
  }

  /**
   * Timer tick: hands the store every read state whose first unflushed change is at least the
   * flush delay old (up to flushBatchMax per call). Returns how many are still dirty.
   */
  flushDue(): number {
    const now = this.now();
    if (this.markCount === 0 || this.markPos[(this.markFirst + this.markCount - 1) % MARKS] < this.dirtyRing.tail) {
      if (this.markCount === MARKS) {
        // Full: the newest mark takes the new entries too (they come due a little later). Dropping
        // the oldest instead would push its entries back on every tick, forever.
        const last = (this.markFirst + this.markCount - 1) % MARKS;
        this.markPos[last] = this.dirtyRing.tail;
        this.markTime[last] = now;
      } else {
        const i = (this.markFirst + this.markCount) % MARKS;
        this.markPos[i] = this.dirtyRing.tail;
        this.markTime[i] = now;
        this.markCount++;
      }
    }
    let due = Math.max(this.dirtyRing.head, this.dueUntil);
    while (this.markCount > 0 && this.markTime[this.markFirst] + this.flushDelayMs <= now) {
      due = Math.max(due, this.markPos[this.markFirst]);
      this.dropMark();
    }
    if (this.flushDelayMs === 0) due = this.dirtyRing.tail;
    this.dueUntil = due;
    return this.flushUpTo(due);
  }

  /** Read states are due that the last flushDue() left for the next batch (it hit flushBatchMax). */
  get flushBehind(): boolean {
    return this.dueUntil > this.dirtyRing.head;
  }

  /**
   * The next slice of what the last flushDue() found due. Takes no write-behind mark: a mark per
   * slice would use up the 1,024 marks long before the flush delay passes.
   */
  flushBehindSlice(): number {
    return this.flushUpTo(this.dueUntil);
  }

  /** Shutdown: hands the store every dirty read state (up to flushBatchMax per call). */
  flushAll(): number {
    return this.flushUpTo(this.dirtyRing.tail);
  }

  private flushUpTo(pos: number): number {
    const ring = this.dirtyRing;
    const end = Math.min(pos, ring.head + this.flushBatchMax);
    if (ring.head >= end) return this.m.header[H_DIRTY];
    while (ring.head < end) this.popDirty();
    ring.trim();
    return this.m.header[H_DIRTY];
  }

  private dropMark(): void {
    this.markFirst = (this.markFirst + 1) % MARKS;
    this.markCount--;
  }

  /** ms since the oldest change that has not been handed to the store (0 when nothing is dirty). */
  oldestDirtyAge(): number {
    if (this.m.header[H_DIRTY] === 0) return 0;
    const now = this.now();
    for (let k = 0; k < this.markCount; k++) {
      const i = (this.markFirst + k) % MARKS;
      if (this.markPos[i] > this.dirtyRing.head) return now - this.markTime[i];
    }
    return 0;
  }

  // ---- rare paths -------------------------------------------------------------------------

  /** A read-state slot for user u, evicting least recently used users (never u) when full. */
  private allocRs(u: number): number {
    let s = rsAlloc(this.m);
    while (s === NIL) {
      if (!this.evictOne(u)) return NIL;
      s = rsAlloc(this.m);
    }
    return s;
  }

  private allocUser(): number {
    let u = userAlloc(this.m);
    while (u === NIL) {
      if (!this.evictOne(NIL)) return NIL;
      u = userAlloc(this.m);
    }
    return u;
  }

  /**
   * Evicts one user other than `keep`, preferring the least recently used user with nothing
   * unflushed (evicting those costs no store write). While the store is degraded only such users
   * may go. On failure, allocFailure says why.
   */
  private evictOne(keep: number): boolean {
    const m = this.m;
    const scan = this.degraded ? CLEAN_SCAN_DEGRADED : CLEAN_SCAN;
    let v = lruHead(m);
    for (let i = 0; i < scan && v !== NIL; i++) {
      if (v !== keep && m.userDirty[v] === 0) {
        this.evict(v);
        return true;
      }
      v = m.userNext[v];
    }
    v = lruHead(m);
    if (v === keep && v !== NIL) v = m.userNext[v];
    if (v === NIL) {
      this.allocFailure = ResultStatus.InsufficientStorage;
      return false;
    }
    if (this.degraded) {
      this.allocFailure = ResultStatus.StoreBacklog;
      return false;
    }
    this.evict(v);
    return true;
  }

  /** Drops a cached user; read states the store has not seen yet go out as writes first. */
  evict(u: number): void {
    const m = this.m;
    let s = m.userHead[u];
    while (s !== NIL) {
      const next = m.rsNext[s];
      if (rsDirty(m, s)) {
        this.emitStored(RecordKind.Write, u, s);
        this.counters.flushed++;
      }
      this.dropRs(s);
      s = next;
    }
    lruUnlink(m, u);
    this.releaseUser(u);
    this.counters.evictions++;
  }

  /**
   * Drops every cached user `selects` picks, writing nothing for them: in cluster mode their
   * partition is moving to another instance (or was lost), whose copy comes from the store, so what
   * this shard still holds for them must neither be served nor written later. Users being loaded
   * stay (their ops are answered and refused at the HTTP layer); a scan of the user slots, run
   * only when ownership changes. Returns the users dropped.
   */
  discardUsers(selects: (lo: number, hi: number) => boolean): number {
    const m = this.m;
    const hwm = m.header[H_USER_HWM];
    let dropped = 0;
    for (let u = 0; u < hwm; u++) {
      if (m.userState[u] !== USER_RESIDENT || !selects(m.userLo[u], m.userHi[u])) continue;
      for (let s = m.userHead[u]; s !== NIL; s = m.rsNext[s]) if (rsDirty(m, s)) this.clearDirty(s);
      this.evict(u);
      this.counters.evictions--;
      dropped++;
    }
    this.counters.discarded += dropped;
    return dropped;
  }

  private releaseUser(u: number): void {
    userIndexRemove(this.m, u);
    userRelease(this.m, u);
  }

  private miss(ops: Uint32Array, o: number): void {
    // Misses queue in arrival order behind any that are already waiting for a user slot; and when
    // every user slot belongs to a user being loaded, they wait until a load completes.
    if (this.waiting.len > this.waitingHead || !this.claimSlot(ops, o)) this.enqueueWaiting(ops, o);
  }

  /**
   * Gives the op's user a LOADING slot and parks the op behind its load (or, store degraded and no
   * clean user to evict, answers it ResultStatus.StoreBacklog). False when every user slot is loading.
   */
  private claimSlot(ops: Uint32Array, o: number): boolean {
    const m = this.m;
    const u = this.allocUser();
    if (u === NIL) {
      if (this.allocFailure !== ResultStatus.StoreBacklog) return false;
      this.status(ops[o + OpWord.Ticket], ResultStatus.StoreBacklog, 0);
      return true;
    }
    const lo = ops[o + OpWord.UserLo];
    const hi = ops[o + OpWord.UserHi];
    m.userLo[u] = lo;
    m.userHi[u] = hi;
    m.userHead[u] = NIL;
    m.userCount[u] = 0;
    m.userDirty[u] = 0;
    m.userVersion[u] = 0;
    m.userHorizon[u] = 0;
    m.userTombHead[u] = 0;
    m.userState[u] = USER_LOADING;
    this.loadingUsers++;
    m.userPrev[u] = NIL;
    m.userNext[u] = NIL;
    userIndexInsert(m, u);
    this.counters.misses++;
    this.loadRequests.push(lo);
    this.loadRequests.push(hi);
    this.park(u, ops, o);
    return true;
  }

  private enqueueWaiting(ops: Uint32Array, o: number): void {
    const at = this.waiting.reserve(OpWord.Size);
    this.waiting.buf.set(ops.subarray(o, o + OpWord.Size), at);
  }

  /**
   * After loads complete (user slots became evictable), retries the misses that waited, in order.
   * Once one finds no slot, the ops of users still without one stay queued, in order; but an op
   * whose user got a slot earlier in this pass parks behind that user's load right away. Left in
   * the queue, it would be overtaken by the user's next op, which finds the user loading and parks.
   */
  private retryWaiting(): void {
    const m = this.m;
    const w = this.waiting;
    const buf = w.buf; // nothing below appends to `waiting`, so the buffer does not move
    const end = w.len;
    let keep = 0;
    let blocked = false;
    for (let o = this.waitingHead; o < end; o += OpWord.Size) {
      const u = userFind(m, buf[o + OpWord.UserLo], buf[o + OpWord.UserHi]);
      if (u !== NIL) {
        // An earlier waiting op of the same user got a slot in this pass.
        if (m.userState[u] === USER_LOADING) this.park(u, buf, o);
        else this.execute(u, buf, o);
      } else if (blocked || !this.claimSlot(buf, o)) {
        blocked = true;
        if (keep !== o) buf.copyWithin(keep, o, o + OpWord.Size);
        keep += OpWord.Size;
      }
    }
    this.waitingHead = 0;
    w.len = keep;
  }

  /** Parks an op behind its user's load (parked-ops.ts: a chain per user slot). */
  private park(u: number, ops: Uint32Array, o: number): void {
    this.parked.push(u, ops, o);
  }

  /**
   * A replacement worker attached to slabs a previous worker filled: the dirty FIFO lived in that
   * worker's memory, so rebuild it from the DIRTY bits (their flush delay starts again now).
   */
  rebuildDirtyQueue(): void {
    const m = this.m;
    this.dirtyRing.clear();
    this.markCount = 0;
    this.dueUntil = 0;
    const hwm = m.header[H_RS_HWM];
    for (let s = 0; s < hwm; s++) {
      if (rsDirty(m, s) && rsLive(m, s)) {
        this.dirtyRing.room();
        this.dirtyRing.push(s);
      }
    }
  }

  /** The store thread was replaced and its loads in flight with it: asks for every loading user again. */
  requestLoadsAgain(): void {
    const m = this.m;
    const hwm = m.header[H_USER_HWM];
    for (let u = 0; u < hwm; u++) {
      if (m.userState[u] !== USER_LOADING) continue;
      this.loadRequests.push(m.userLo[u]);
      this.loadRequests.push(m.userHi[u]);
    }
  }

  /** Users whose load is outstanding. */
  get loading(): number {
    return this.loadingUsers;
  }

  /**
   * Installs loaded users from a load section (StoreMsg.Answers, protocol.ts) and replays what was parked behind them.
   * Section: repeated [userLo, userHi, status, n, n * RsWord.Size].
   */
  installLoads(task: Uint32Array, off: number, end: number): void {
    const m = this.m;
    let o = off;
    while (o < end) {
      const lo = task[o];
      const hi = task[o + 1];
      const status = task[o + 2];
      const n = task[o + 3];
      o += 4;
      const u = userFind(m, lo, hi);
      // Only users this worker is loading (a replacement worker ignores its predecessor's loads).
      if (u !== NIL && m.userState[u] === USER_LOADING) {
        this.counters.loads++;
        this.loadingUsers--;
        // installUser releases the user itself when the read states do not fit. A failed load
        // releases the placeholder (no read states, not on the LRU) so that the user's next op
        // misses and asks for the load again.
        const result = status === LoadStatus.Ok ? this.installUser(u, task, o, n) : ResultStatus.Unavailable;
        if (status !== LoadStatus.Ok) this.releaseUser(u);
        this.replayParked(u, result === ResultStatus.Ok ? u : NIL, result);
      }
      o += n * RsWord.Size;
    }
    if (this.waiting.len > this.waitingHead) this.retryWaiting();
  }

  /**
   * Replays on user slot u (u !== NIL) or refuses with `status` the ops parked behind the load of
   * user slot `slot`, in arrival order. Users are replayed one at a time, right after their own
   * install, so a replay that evicts another user cannot strand that user's ops.
   */
  private replayParked(slot: number, u: number, status: number): void {
    const q = this.parked;
    const buf = q.buffer; // execute() never parks, so the buffer does not move during the pass
    for (let e = q.first(slot); e !== 0; e = q.after(e)) {
      const p = q.offsetOf(e);
      if (u !== NIL) this.execute(u, buf, p);
      else this.status(buf[p + OpWord.Ticket], status, 0);
    }
    q.drop(slot);
  }

  private installUser(u: number, src: Uint32Array, off: number, n: number): number {
    const m = this.m;
    for (let i = 0; i < n; i++) {
      const r = off + i * RsWord.Size;
      const ver = join53(src[r + RsWord.VerLo], src[r + RsWord.VerHi]);
      if (ver > m.userVersion[u]) m.userVersion[u] = ver;
      if (src[r + RsWord.PinHi] === TOMB_PIN_HI) {
        // A tombstone (see protocol.ts); channel 0 is the store's horizon.
        if (src[r + RsWord.ChanLo] === 0 && src[r + RsWord.ChanHi] === 0) {
          if (ver > m.userHorizon[u]) m.userHorizon[u] = ver;
        } else this.pushTomb(u, src[r + RsWord.ChanLo], src[r + RsWord.ChanHi], ver);
        continue;
      }
      if (chanFind(m, u, src[r + RsWord.ChanLo], src[r + RsWord.ChanHi]) !== NIL) continue;
      const s = this.allocRs(u);
      if (s === NIL) {
        // The user's stored read states do not fit even in an otherwise empty shard. Nothing is
        // lost (the store still has them); drop the partial copy and refuse the operations.
        let t = m.userHead[u];
        while (t !== NIL) {
          const next = m.rsNext[t];
          this.dropRs(t);
          t = next;
        }
        this.releaseUser(u);
        this.counters.rejectedFull++;
        return this.allocFailure;
      }
      m.rsChanLo[s] = src[r + RsWord.ChanLo];
      m.rsChanHi[s] = src[r + RsWord.ChanHi];
      m.rsMsgLo[s] = src[r + RsWord.MsgLo];
      m.rsMsgHi[s] = src[r + RsWord.MsgHi];
      m.rsMention[s] = src[r + RsWord.Mention];
      m.rsPin[s] = join53(src[r + RsWord.PinLo], src[r + RsWord.PinHi]);
      m.rsFlags[s] = src[r + RsWord.Flags];
      m.rsVersion[s] = join53(src[r + RsWord.VerLo], src[r + RsWord.VerHi]);
      this.linkRs(u, s);
    }
    m.userState[u] = USER_RESIDENT;
    lruAppend(m, u);
    this.clock.observe(m.userVersion[u]);
    return ResultStatus.Ok;
  }

  /**
   * The user's read states ordered by channel, as a meta record (M_*), the read states, and the
   * deleted channel ids packed ListMetaWord.DeletesPerRecord to a record. With OpFlag.HasSince: only read states
   * whose version is above `since`, and the deletes after it, unless `since` is below the user's
   * tombstone horizon (then everything, ListMetaWord.Full) or above their version (nothing; the main thread
   * answers 400). OpFlag.HasAfter / OpFlag.HasLimit cut one page; the deletes reported are those of the
   * page's channel range, so the pages of one delta add up to the whole of it.
   */
  private getAll(u: number, ops: Uint32Array, o: number, head: number): void {
    const m = this.m;
    const ticket = ops[o + OpWord.Ticket];
    const version = m.userVersion[u];
    const hasSince = (head & OpFlag.HasSince) !== 0;
    const since = hasSince ? join53(ops[o + OpWord.PinLo], ops[o + OpWord.PinHi]) : 0;
    const ahead = hasSince && since > version;
    const full = !hasSince || since < m.userHorizon[u];
    const hasAfter = (head & OpFlag.HasAfter) !== 0;
    const aLo = ops[o + OpWord.ChanLo];
    const aHi = ops[o + OpWord.ChanHi];
    const n = m.userCount[u];
    if (this.sortScratch.length < n) this.sortScratch = new Uint32Array(Math.max(n, this.sortScratch.length * 2));
    let k = 0;
    let s = m.userHead[u];
    for (let i = 0; i < n; i++) {
      const keep =
        !ahead &&
        (full || m.rsVersion[s] > since) &&
        (!hasAfter || m.rsChanHi[s] > aHi || (m.rsChanHi[s] === aHi && m.rsChanLo[s] > aLo));
      if (keep) this.sortScratch[k++] = s;
      s = m.rsNext[s];
    }
    const slots = this.sortScratch.subarray(0, k);
    sortByChannel(m, slots);
    const limit = (head & OpFlag.HasLimit) !== 0 ? ops[o + OpWord.Count] : 0xffffffff;
    const more = k > limit;
    const count = more ? limit : k;
    // the page's channel range for deletes: (after, last returned] when more remain
    const endLo = more ? m.rsChanLo[slots[count - 1]] : 0xffffffff;
    const endHi = more ? m.rsChanHi[slots[count - 1]] : 0xffffffff;
    const dels = full || ahead ? 0 : this.gatherDeletes(u, since, hasAfter, aLo, aHi, endLo, endHi);
    const delRecords = Math.ceil(dels / ListMetaWord.DeletesPerRecord);
    const r = this.results;
    const at = r.reserve(ResultWord.HeaderSize + (1 + count + delRecords) * RsWord.Size);
    const b = r.buf;
    b[at] = ticket;
    b[at + 1] = ResultStatus.Ok;
    b[at + 2] = 0;
    b[at + 3] = 1 + count + delRecords;
    const meta = at + ResultWord.HeaderSize;
    for (let j = 0; j < RsWord.Size; j++) b[meta + j] = 0;
    b[meta + ListMetaWord.VerLo] = lo32(version);
    b[meta + ListMetaWord.VerHi] = hi32(version);
    b[meta + ListMetaWord.Full] = full ? 1 : 0;
    b[meta + ListMetaWord.RsCount] = count;
    b[meta + ListMetaWord.DelCount] = dels;
    b[meta + ListMetaWord.More] = more ? 1 : 0;
    for (let i = 0; i < count; i++) this.writeRs(b, meta + (1 + i) * RsWord.Size, slots[i]);
    const delAt = meta + (1 + count) * RsWord.Size;
    for (let j = 0; j < dels * 2; j++) b[delAt + j] = this.delScratch[j];
    for (let j = dels * 2; j < delRecords * RsWord.Size; j++) b[delAt + j] = 0;
    if (this.done !== null) this.markDone(ticket, ResultStatus.Ok, 0);
  }

  /**
   * Channels of the user's tombstones newer than `since` within (after, end], not live again,
   * sorted and without repeats, into delScratch; returns how many. Walks the user's chain in the
   * ring, newest first; an entry already overwritten ends it (its user's horizon covers it).
   */
  private gatherDeletes(u: number, since: number, hasAfter: boolean, aLo: number, aHi: number, eLo: number, eHi: number): number {
    const m = this.m;
    const cap = m.tombCapacity;
    const oldest = this.tombPos - cap;
    let d = 0;
    let pos = m.userTombHead[u] - 1;
    while (pos >= 0 && pos >= oldest) {
      const i = pos % cap;
      const lo = m.tombChanLo[i];
      const hi = m.tombChanHi[i];
      if (
        m.tombTs[i] > since &&
        (!hasAfter || hi > aHi || (hi === aHi && lo > aLo)) &&
        (hi < eHi || (hi === eHi && lo <= eLo)) &&
        chanFind(m, u, lo, hi) === NIL
      ) {
        if (this.delScratch.length < (d + 1) * 2) {
          const grown = new Uint32Array(this.delScratch.length * 2);
          grown.set(this.delScratch);
          this.delScratch = grown;
        }
        this.delScratch[d * 2] = lo;
        this.delScratch[d * 2 + 1] = hi;
        d++;
      }
      const back = m.tombBack[i];
      if (back === 0) break;
      pos -= back;
    }
    return sortPairsUnique(this.delScratch, d);
  }

  /**
   * Records a delete of user u in the tombstone ring. The entry it overwrites (the oldest) raises
   * its user's horizon to its timestamp: that delete can no longer be reported, so a delta from
   * before it must be a full answer.
   */
  private pushTomb(u: number, chanLo: number, chanHi: number, ts: number): void {
    const m = this.m;
    const cap = m.tombCapacity;
    const pos = this.tombPos;
    const i = pos % cap;
    if (pos >= cap) {
      const owner = userFind(m, m.tombUserLo[i], m.tombUserHi[i]);
      if (owner !== NIL && m.tombTs[i] > m.userHorizon[owner]) m.userHorizon[owner] = m.tombTs[i];
    }
    m.tombUserLo[i] = m.userLo[u];
    m.tombUserHi[i] = m.userHi[u];
    m.tombChanLo[i] = chanLo;
    m.tombChanHi[i] = chanHi;
    m.tombTs[i] = ts;
    const prev = m.userTombHead[u] - 1;
    m.tombBack[i] = prev >= 0 && pos - prev < cap ? pos - prev : 0;
    m.userTombHead[u] = pos + 1;
    this.tombPos = pos + 1;
    m.header[H_TOMB_POS_LO] = lo32(pos + 1);
    m.header[H_TOMB_POS_HI] = hi32(pos + 1);
  }

  /** The user's unread summary, from one walk of their slot list. */
  private summary(u: number, ticket: number): void {
    const m = this.m;
    const n = m.userCount[u];
    let mentions = 0;
    let withMentions = 0;
    let s = m.userHead[u];
    for (let i = 0; i < n; i++) {
      const c = m.rsMention[s];
      mentions += c;
      if (c > 0) withMentions++;
      s = m.rsNext[s];
    }
    const r = this.results;
    const at = r.reserve(ResultWord.HeaderSize + RsWord.Size);
    const b = r.buf;
    b[at] = ticket;
    b[at + 1] = ResultStatus.Ok;
    b[at + 2] = 0;
    b[at + 3] = 1;
    const rec = at + ResultWord.HeaderSize;
    for (let j = 0; j < RsWord.Size; j++) b[rec + j] = 0;
    const version = m.userVersion[u];
    b[rec + SummaryWord.VerLo] = lo32(version);
    b[rec + SummaryWord.VerHi] = hi32(version);
    b[rec + SummaryWord.ReadStates] = n;
    b[rec + SummaryWord.MentionsLo] = lo32(mentions);
    b[rec + SummaryWord.MentionsHi] = hi32(mentions);
    b[rec + SummaryWord.ChannelsWithMentions] = withMentions;
    if (this.done !== null) this.markDone(ticket, ResultStatus.Ok, 0);
  }

  /** Gives back scratch a burst grew (between batches, once the shard is idle). */
  trimScratch(): void {
    this.results.trim();
    this.loadRequests.trim();
    this.mutations.trim();
    this.waiting.trim();
  }

  /** Clears the per-batch output buffers after the worker has copied them into its reply. */
  resetOutput(): void {
    this.results.len = 0;
    this.loadRequests.len = 0;
    this.mutations.len = 0;
    this.journal.len = FRAME_HEADER_WORDS;
    this.journalRecords = 0;
    this.m.header[H_LEDGER_JOURNAL_LEN] = FRAME_HEADER_WORDS;
  }
}

/**
 * Sorts `d` (lo, hi) pairs by unsigned 64-bit value in place and drops repeats; returns the count
 * left. Insertion sort for short runs, a heap sort otherwise (a user may have many tombstones).
 */
function sortPairsUnique(a: Uint32Array, d: number): number {
  if (d <= 24) {
    for (let i = 1; i < d; i++) {
      let j = i;
      while (j > 0 && pairLess(a, j, j - 1)) {
        swapPairs(a, j, j - 1);
        j--;
      }
    }
  } else {
    for (let i = (d >> 1) - 1; i >= 0; i--) siftPairs(a, i, d);
    for (let end = d - 1; end > 0; end--) {
      swapPairs(a, 0, end);
      siftPairs(a, 0, end);
    }
  }
  let w = 0;
  for (let i = 0; i < d; i++) {
    if (w > 0 && a[(w - 1) * 2] === a[i * 2] && a[(w - 1) * 2 + 1] === a[i * 2 + 1]) continue;
    a[w * 2] = a[i * 2];
    a[w * 2 + 1] = a[i * 2 + 1];
    w++;
  }
  return w;
}

function pairLess(a: Uint32Array, x: number, y: number): boolean {
  const xh = a[x * 2 + 1];
  const yh = a[y * 2 + 1];
  return xh < yh || (xh === yh && a[x * 2] < a[y * 2]);
}

function swapPairs(a: Uint32Array, x: number, y: number): void {
  const lo = a[x * 2];
  const hi = a[x * 2 + 1];
  a[x * 2] = a[y * 2];
  a[x * 2 + 1] = a[y * 2 + 1];
  a[y * 2] = lo;
  a[y * 2 + 1] = hi;
}

function siftPairs(a: Uint32Array, i: number, n: number): void {
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) return;
    let c = l;
    if (l + 1 < n && pairLess(a, l, l + 1)) c = l + 1;
    if (!pairLess(a, i, c)) return;
    swapPairs(a, i, c);
    i = c;
  }
}

/** Insertion sort for short lists, otherwise a heap sort: in place, no comparator closure. */
function sortByChannel(m: ShardMemory, a: Uint32Array): void {
  const n = a.length;
  if (n <= 24) {
    for (let i = 1; i < n; i++) {
      const x = a[i];
      let j = i - 1;
      while (j >= 0 && channelLess(m, x, a[j])) {
        a[j + 1] = a[j];
        j--;
      }
      a[j + 1] = x;
    }
    return;
  }
  for (let i = (n >> 1) - 1; i >= 0; i--) siftDown(m, a, i, n);
  for (let end = n - 1; end > 0; end--) {
    const t = a[0];
    a[0] = a[end];
    a[end] = t;
    siftDown(m, a, 0, end);
  }
}

function siftDown(m: ShardMemory, a: Uint32Array, i: number, n: number): void {
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) return;
    let c = l;
    if (l + 1 < n && channelLess(m, a[l], a[l + 1])) c = l + 1;
    if (!channelLess(m, a[i], a[c])) return;
    const t = a[i];
    a[i] = a[c];
    a[c] = t;
    i = c;
  }
}

function channelLess(m: ShardMemory, x: number, y: number): boolean {
  const xh = m.rsChanHi[x];
  const yh = m.rsChanHi[y];
  return xh < yh || (xh === yh && m.rsChanLo[x] < m.rsChanLo[y]);
}
