/**
 * Write-behind between the shard engines and the store.
 *
 * Shards hand over snapshots of changed read states (their flush timer, evictions, deletes) as
 * StoredWord.Size records. Until the store confirms a record it stays pending, an overlay keyed by
 * user and channel: a load for that user merges it over what the store returns, so a user evicted
 * with unflushed changes and asked for again sees them, not a stale copy. Records are sent in
 * batches with bounded concurrency; a failed batch goes back to the front of the queue and is
 * retried with exponential backoff (last-write-wins timestamps make retries and reordering safe).
 * When the store fails or the backlog passes its bound, `degraded` tells the shards to keep
 * changes in their slabs and evict only clean users, so nothing acknowledged is ever dropped.
 *
 * It runs on the store thread (store-host.ts). The pending records, their indexes and the send
 * queue live in typed arrays (PendingWrites): records that live until a store round trip ends
 * would otherwise be promoted and make the thread's major collections frequent. What is allocated
 * here is per batch: the buffer handed to store.apply() and the batch's entry list.
 */
import { RecordKind, RsWord, StoredWord, join53 } from './protocol.js';
import { tomb } from './store/tombstones.js';
import { PendingWrites } from './pending-writes.js';
import { unpackLoads } from './store/load-many.js';
import type { ReadStateStore } from './store/store.js';
import { IDLE_CHECK_MS } from './idle-collector.js';

/** WriteBehindOptions.lingerMs's default: far below any --flush-delay worth having, and at most 20 partial batches a second */
export const DEFAULT_LINGER_MS = 50;

export interface WriteBehindOptions {
  /** records per store.apply() call */
  batchSize?: number;
  /** store.apply() calls in flight at once */
  concurrency?: number;
  /**
   * ms a batch smaller than batchSize waits for more records before it is sent (0: at once).
   * Under a trickle (a few thousand req/s, records coming due a few at a time after --flush-delay)
   * every record would otherwise be a transaction of its own, each with its fsync and its copy of
   * the b-tree pages it touches in SQLite's WAL: at 3,000 req/s the store committed ~11 records per
   * transaction, 87 fsyncs a second. Nothing waits on a write but drain(), which sends at once: the shards' journals and
   * slabs hold every change until the store confirms it.
   */
  lingerMs?: number;
  /** records waiting for the store beyond which the shards are told to hold back */
  maxPending?: number;
  /** first retry delay after a failure; doubles up to maxBackoffMs */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** records the pending pool holds before it first grows (it doubles when full) */
  poolSize?: number;
  /** a pool found empty at two checks this far apart, with nothing submitted or loaded between them, shrinks back to poolSize (ms; 0 = never) */
  shrinkIdleMs?: number;
  /**
   * Called once when the write-behind turns idle (the same checks as the pool's shrink) after it
   * took records or loaded users:
   * the thread allocates nothing while idle, so nothing else would make V8 free what the burst
   * left (the old pool, the records that came in), and its memory stayed held until the next burst.
   */
  onIdle?: () => void;
  onStateChange?: (degraded: boolean, err?: unknown) => void;
}

export interface WriteBehindStats {
  pending: number;
  poolSize: number;
  queued: number;
  inFlight: number;
  written: number;
  failures: number;
  retries: number;
  batches: number;
  lastBatchSize: number;
  storeFailing: boolean;
  loads: number;
  loadFailures: number;
  loadSeconds: number;
}

export class WriteBehind {
  private readonly store: ReadStateStore;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly lingerMs: number;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly lingerBound = (): void => this.lingerDone();
  private readonly maxPending: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onStateChange: (degraded: boolean, err?: unknown) => void;
  /** newest unconfirmed record per user and channel, and the queue of records to send */
  private readonly writes: PendingWrites;
  /** store.apply() calls in flight */
  private inFlight = 0;
  private failing = false;
  private backoff: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private drainWaiters: (() => void)[] = [];
  private readonly shrinkTimer: NodeJS.Timeout | undefined;
  private emptyAtLastCheck = false;
  /** records were submitted or users loaded since the last idle check that called onIdle */
  private busySinceIdle = false;
  /** records were submitted or users loaded since the last check: not idle, even with the pool empty at both checks */
  private activeSinceCheck = false;
  private readonly onIdle: (() => void) | undefined;
  /** Optional observers (metrics): cost nothing until set. */
  onLoadSeconds: ((seconds: number) => void) | null = null;
  onBatchSize: ((records: number) => void) | null = null;
  /** after a store call settled (the pending count changed) */
  onSettled: (() => void) | null = null;
  /**
   * Users with a load in flight, and the records of theirs confirmed meanwhile: a store that runs
   * reads and writes concurrently (Cassandra) may answer the load without a write it confirmed
   * first, and once confirmed the record is no longer pending, so the overlay would miss it.
   */
  private readonly loadsInFlight = new Map<string, { loads: number; confirmed: Uint32Array[] }>();
  private readonly counters = { written: 0, failures: 0, retries: 0, batches: 0, lastBatchSize: 0, loads: 0, loadFailures: 0, loadSeconds: 0 };

  constructor(store: ReadStateStore, o: WriteBehindOptions = {}) {
    this.store = store;
    this.batchSize = o.batchSize ?? 500;
    this.concurrency = o.concurrency ?? 4;
    this.lingerMs = o.lingerMs ?? DEFAULT_LINGER_MS;
    this.maxPending = o.maxPending ?? 1_000_000;
    this.backoffMs = o.backoffMs ?? 100;
    this.maxBackoffMs = o.maxBackoffMs ?? 5_000;
    this.backoff = this.backoffMs;
    this.writes = new PendingWrites(o.poolSize);
    this.onStateChange = o.onStateChange ?? (() => {});
    this.onIdle = o.onIdle;
    const shrinkIdleMs = o.shrinkIdleMs ?? IDLE_CHECK_MS;
    if (shrinkIdleMs > 0) {
      this.shrinkTimer = setInterval(() => this.shrinkIfIdle(), shrinkIdleMs);
      this.shrinkTimer.unref();
    }
  }

  /** Entries the pending pool has room for (grows under a backlog, shrinks once idle). */
  get poolSize(): number {
    return this.writes.size;
  }

  /**
   * Shrinks the pool if it was empty at this check and the one before and nothing came in between
   * (idle for a whole period). Under steady traffic the pool is often empty at a check while loads
   * and writes keep coming: that is not idle, and a full collection then would delay them.
   */
  shrinkIfIdle(): boolean {
    const empty = this.writes.pending === 0 && this.inFlight === 0;
    const idle = empty && this.emptyAtLastCheck && !this.activeSinceCheck;
    this.emptyAtLastCheck = empty;
    this.activeSinceCheck = false;
    if (!idle) return false;
    const shrank = this.writes.shrink();
    if (this.busySinceIdle) {
      this.busySinceIdle = false;
      this.onIdle?.();
    }
    return shrank;
  }

  /** Shards must hold changes back: the store is failing or too much is waiting for it. */
  get degraded(): boolean {
    return this.failing || this.writes.pending >= this.maxPending;
  }

  /** The pool holds --max-pending-writes records: nothing may add one (deletes are refused). */
  get pendingFull(): boolean {
    return this.writes.pending >= this.maxPending;
  }

  get storeFailing(): boolean {
    return this.failing;
  }

  /** Records not confirmed by the store yet. */
  get pendingRecords(): number {
    return this.writes.pending;
  }

  /** Takes `count` records (copied: the caller's buffer is reused) and starts sending them. */
  submit(records: Uint32Array, count: number): void {
    if (count > 0) {
      this.busySinceIdle = true;
      this.activeSinceCheck = true;
    }
    for (let i = 0; i < count; i++) this.writes.put(records, i * StoredWord.Size);
    this.pump();
  }

  /** The user's read states as the store will hold them once everything pending is written. */
  async load(lo: number, hi: number): Promise<Uint32Array> {
    const started = performance.now();
    this.counters.loads++;
    this.busySinceIdle = true;
    this.activeSinceCheck = true;
    const key = `${lo}:${hi}`;
    let watch = this.loadsInFlight.get(key);
    if (watch === undefined) {
      watch = { loads: 0, confirmed: [] };
      this.loadsInFlight.set(key, watch);
    }
    watch.loads++;
    let stored: Uint32Array;
    try {
      stored = await this.store.load(lo, hi);
    } catch (err) {
      this.counters.loadFailures++;
      throw err;
    } finally {
      if (--watch.loads === 0) this.loadsInFlight.delete(key);
      const seconds = (performance.now() - started) / 1000;
      this.counters.loadSeconds += seconds;
      this.onLoadSeconds?.(seconds);
    }
    return this.writes.overlay(lo, hi, watch.confirmed.length === 0 ? stored : withConfirmed(stored, watch.confirmed));
  }

  /**
   * Several users' read states in one store call (loadMany where the store has it): one answer
   * per user, in order, each as load() would give it.
   */
  async loadMany(users: Uint32Array): Promise<Uint32Array[]> {
    this.busySinceIdle = true;
    this.activeSinceCheck = true;
    const n = users.length / 2;
    const store = this.store;
    if (store.loadMany === undefined || n === 1) {
      const each: Promise<Uint32Array>[] = [];
      for (let u = 0; u < n; u++) each.push(this.load(users[2 * u], users[2 * u + 1]));
      return Promise.all(each);
    }
    const started = performance.now();
    this.counters.loads += n;
    const watches = new Array<{ loads: number; confirmed: Uint32Array[] }>(n);
    for (let u = 0; u < n; u++) {
      const key = `${users[2 * u]}:${users[2 * u + 1]}`;
      let watch = this.loadsInFlight.get(key);
      if (watch === undefined) {
        watch = { loads: 0, confirmed: [] };
        this.loadsInFlight.set(key, watch);
      }
      watch.loads++;
      watches[u] = watch;
    }
    let stored: Uint32Array[];
    try {
      stored = unpackLoads(await store.loadMany(users), n);
    } catch (err) {
      this.counters.loadFailures += n;
      throw err;
    } finally {
      for (let u = 0; u < n; u++) if (--watches[u].loads === 0) this.loadsInFlight.delete(`${users[2 * u]}:${users[2 * u + 1]}`);
      const seconds = (performance.now() - started) / 1000;
      this.counters.loadSeconds += seconds * n;
      if (this.onLoadSeconds !== null) for (let u = 0; u < n; u++) this.onLoadSeconds(seconds);
    }
    for (let u = 0; u < n; u++) {
      const confirmed = watches[u].confirmed;
      stored[u] = this.writes.overlay(users[2 * u], users[2 * u + 1], confirmed.length === 0 ? stored[u] : withConfirmed(stored[u], confirmed));
    }
    return stored;
  }

  /** Rare: keeps the newest records of users being loaded before the pool forgets them. */
  private keepForLoads(entries: Int32Array): void {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      // Only the newest record ever taken in for its read state: an older one confirmed late must
      // not win over what the store returned.
      if (!this.writes.isCurrent(e)) continue;
      const rec = this.writes.record(e);
      const watch = this.loadsInFlight.get(`${rec[StoredWord.UserLo]}:${rec[StoredWord.UserHi]}`);
      if (watch !== undefined) watch.confirmed.push(rec.slice());
    }
  }

  /** Sends what the in-flight bound allows; a partial batch lingers unless `now` (its linger ran out) or someone drains. */
  private pump(now = false): void {
    while (!this.failing && this.inFlight < this.concurrency && this.writes.queued > 0) {
      if (!now && this.writes.queued < this.batchSize && this.lingerMs > 0 && this.drainWaiters.length === 0) {
        this.lingerTimer ??= setTimeout(this.lingerBound, this.lingerMs);
        break;
      }
      this.send();
    }
    this.checkDrained();
  }

  private lingerDone(): void {
    this.lingerTimer = undefined;
    this.pump(true);
  }

  /** Sends the next batch from the front of the queue (the caller checked it is not empty). */
  private send(): void {
    const n = Math.min(this.batchSize, this.writes.queued);
    const entries = new Int32Array(n);
    const flat = new Uint32Array(n * StoredWord.Size);
    this.writes.take(entries, flat);
    this.inFlight++;
    this.counters.batches++;
    this.counters.lastBatchSize = n;
    this.onBatchSize?.(n);
    this.store.apply(flat, n).then(
      () => this.confirmed(entries),
      (err: unknown) => this.failed(entries, err),
    );
  }

  private confirmed(entries: Int32Array): void {
    this.inFlight--;
    this.counters.written += entries.length;
    if (this.loadsInFlight.size > 0) this.keepForLoads(entries);
    // A newer record for the same read state may have arrived meanwhile: it stays pending.
    this.writes.confirm(entries);
    this.onSettled?.();
    if (this.failing) {
      this.failing = false;
      this.backoff = this.backoffMs;
      // The store answered: the probe the failure scheduled is no longer needed.
      if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.onStateChange(false);
    }
    this.pump();
  }

  private failed(entries: Int32Array, err: unknown): void {
    this.inFlight--;
    this.counters.failures++;
    // Back to the front of the queue, in order; records superseded meanwhile are dropped.
    this.writes.requeue(entries);
    this.onSettled?.();
    if (!this.failing) {
      this.failing = true;
      this.onStateChange(true, err);
    }
    if (this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => this.retry(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, this.maxBackoffMs);
    }
  }

  /** After a backoff: probe the store with one batch; success resumes full speed. */
  private retry(): void {
    this.retryTimer = undefined;
    this.counters.retries++;
    if (this.writes.queued > 0) this.send();
    else {
      this.failing = false;
      this.backoff = this.backoffMs;
      this.onStateChange(false);
      this.checkDrained();
    }
  }

  private checkDrained(): void {
    if (this.writes.pending === 0 && this.inFlight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true once everything submitted is confirmed, false if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.writes.pending === 0 && this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
      // a waiter sends what lingers
      this.pump();
    });
  }

  stats(): WriteBehindStats {
    return {
      pending: this.writes.pending,
      poolSize: this.writes.size,
      queued: this.writes.queued,
      inFlight: this.inFlight,
      storeFailing: this.failing,
      ...this.counters,
    };
  }

  /**
   * A barrier for the journal's retirement: everything submitted before this call is in the
   * store once `barrierPassed` turns true. Start the next one only after that.
   */
  startBarrier(): void {
    this.writes.flipGeneration();
  }

  get barrierPassed(): boolean {
    return this.writes.previousGeneration === 0;
  }

  /** Oldest pending write timestamp (µs), for tests and diagnostics. */
  oldestPendingTs(): number {
    return this.writes.oldestTs();
  }

  close(): void {
    if (this.shrinkTimer !== undefined) clearInterval(this.shrinkTimer);
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}

/** The stored rows with the confirmed records (in confirmation order) put over them. */
function withConfirmed(stored: Uint32Array, confirmed: Uint32Array[]): Uint32Array {
  const rows = new Map<string, Uint32Array>();
  for (let r = 0; r < stored.length; r += RsWord.Size) rows.set(`${stored[r + RsWord.ChanLo]}:${stored[r + RsWord.ChanHi]}`, stored.subarray(r, r + RsWord.Size));
  for (const rec of confirmed) {
    const key = `${rec[StoredWord.Rs + RsWord.ChanLo]}:${rec[StoredWord.Rs + RsWord.ChanHi]}`;
    if (rec[StoredWord.Kind] !== RecordKind.Delete) rows.set(key, rec.subarray(StoredWord.Rs, StoredWord.Rs + RsWord.Size));
    else {
      // a delete is a tombstone record with its timestamp (protocol.ts TOMB_PIN_HI)
      const t = new Uint32Array(RsWord.Size);
      tomb(t, 0, rec[StoredWord.Rs + RsWord.ChanLo], rec[StoredWord.Rs + RsWord.ChanHi], join53(rec[StoredWord.TsLo], rec[StoredWord.TsHi]));
      rows.set(key, t);
    }
  }
  const out = new Uint32Array(rows.size * RsWord.Size);
  let at = 0;
  for (const row of rows.values()) {
    out.set(row, at);
    at += RsWord.Size;
  }
  return out;
}
