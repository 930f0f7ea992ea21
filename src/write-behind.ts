/**
 * Write-behind between the shard engines and the store.
 *
 * Shards hand over snapshots of changed read states (their flush timer, evictions, deletes) as
 * STORED_WORDS records. Until the store confirms a record it stays in `pending`, an overlay keyed
 * by user and channel: a load for that user merges it over what the store returns, so a user
 * evicted with unflushed changes and asked for again sees them, not a stale copy. Records are
 * sent in batches with bounded concurrency; a failed batch goes back to the queue and is retried
 * with exponential backoff (last-write-wins timestamps make retries and reordering safe). When
 * the store fails or the backlog passes its bound, `degraded` tells the shards to keep changes in
 * their slabs and evict only clean users, so nothing acknowledged is ever dropped.
 */
import {
  KIND_DELETE,
  RS_WORDS,
  R_CHAN_HI,
  R_CHAN_LO,
  STORED_WORDS,
  S_KIND,
  S_RS,
  S_TS_HI,
  S_TS_LO,
  S_USER_HI,
  S_USER_LO,
  join53,
} from '../workers/protocol.js';
import type { ReadStateStore } from './store/store.js';

export interface WriteBehindOptions {
  /** records per store.apply() call */
  batchSize?: number;
  /** store.apply() calls in flight at once */
  concurrency?: number;
  /** records waiting for the store beyond which the shards are told to hold back */
  maxPending?: number;
  /** first retry delay after a failure; doubles up to maxBackoffMs */
  backoffMs?: number;
  maxBackoffMs?: number;
  onStateChange?: (degraded: boolean, err?: unknown) => void;
}

export interface WriteBehindStats {
  pending: number;
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

function userKey(lo: number, hi: number): string {
  return lo + ':' + hi;
}

export class WriteBehind {
  private readonly store: ReadStateStore;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly maxPending: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly onStateChange: (degraded: boolean, err?: unknown) => void;
  /** newest unconfirmed record per user and channel */
  private readonly pending = new Map<string, Map<string, Uint32Array>>();
  private pendingCount = 0;
  /** records to send, oldest first (a superseded record is skipped when its turn comes) */
  private queue: Uint32Array[] = [];
  private queueHead = 0;
  private inFlight = 0;
  private failing = false;
  private backoff: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private drainWaiters: (() => void)[] = [];
  /** Optional observers (metrics): cost nothing until set. */
  onLoadSeconds: ((seconds: number) => void) | null = null;
  onBatchSize: ((records: number) => void) | null = null;
  private readonly counters = { written: 0, failures: 0, retries: 0, batches: 0, lastBatchSize: 0, loads: 0, loadFailures: 0, loadSeconds: 0 };

  constructor(store: ReadStateStore, o: WriteBehindOptions = {}) {
    this.store = store;
    this.batchSize = o.batchSize ?? 500;
    this.concurrency = o.concurrency ?? 4;
    this.maxPending = o.maxPending ?? 1_000_000;
    this.backoffMs = o.backoffMs ?? 100;
    this.maxBackoffMs = o.maxBackoffMs ?? 5_000;
    this.backoff = this.backoffMs;
    this.onStateChange = o.onStateChange ?? (() => {});
  }

  /** Shards must hold changes back: the store is failing or too much is waiting for it. */
  get degraded(): boolean {
    return this.failing || this.pendingCount >= this.maxPending;
  }

  get storeFailing(): boolean {
    return this.failing;
  }

  /** Records not confirmed by the store yet. */
  get pendingRecords(): number {
    return this.pendingCount;
  }

  /** Takes `count` records (copied: the caller's buffer is reused) and starts sending them. */
  submit(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const rec = records.slice(i * STORED_WORDS, (i + 1) * STORED_WORDS);
      const uk = userKey(rec[S_USER_LO], rec[S_USER_HI]);
      const ck = userKey(rec[S_RS + R_CHAN_LO], rec[S_RS + R_CHAN_HI]);
      let rows = this.pending.get(uk);
      if (rows === undefined) {
        rows = new Map();
        this.pending.set(uk, rows);
      }
      if (!rows.has(ck)) this.pendingCount++;
      rows.set(ck, rec);
      this.queue.push(rec);
    }
    this.pump();
  }

  /** The user's read states as the store will hold them once everything pending is written. */
  async load(lo: number, hi: number): Promise<Uint32Array> {
    const started = performance.now();
    this.counters.loads++;
    let stored: Uint32Array;
    try {
      stored = await this.store.load(lo, hi);
    } catch (err) {
      this.counters.loadFailures++;
      throw err;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.counters.loadSeconds += seconds;
      this.onLoadSeconds?.(seconds);
    }
    const rows = this.pending.get(userKey(lo, hi));
    if (rows === undefined) return stored;
    // Overlay: pending records replace (or delete) what the store returned for their channel.
    const merged = new Map<string, Uint32Array>();
    for (let at = 0; at < stored.length; at += RS_WORDS) {
      merged.set(userKey(stored[at + R_CHAN_LO], stored[at + R_CHAN_HI]), stored.subarray(at, at + RS_WORDS));
    }
    for (const [ck, rec] of rows) {
      if (rec[S_KIND] === KIND_DELETE) merged.delete(ck);
      else merged.set(ck, rec.subarray(S_RS, S_RS + RS_WORDS));
    }
    const out = new Uint32Array(merged.size * RS_WORDS);
    let at = 0;
    for (const rs of merged.values()) {
      out.set(rs, at);
      at += RS_WORDS;
    }
    return out;
  }

  private pump(): void {
    while (!this.failing && this.inFlight < this.concurrency && this.queueHead < this.queue.length) {
      const batch: Uint32Array[] = [];
      while (batch.length < this.batchSize && this.queueHead < this.queue.length) {
        const rec = this.queue[this.queueHead++];
        if (this.isCurrent(rec)) batch.push(rec);
      }
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      if (batch.length > 0) this.send(batch);
    }
    this.checkDrained();
  }

  private isCurrent(rec: Uint32Array): boolean {
    const rows = this.pending.get(userKey(rec[S_USER_LO], rec[S_USER_HI]));
    return rows?.get(userKey(rec[S_RS + R_CHAN_LO], rec[S_RS + R_CHAN_HI])) === rec;
  }

  private send(batch: Uint32Array[]): void {
    const flat = new Uint32Array(batch.length * STORED_WORDS);
    for (let i = 0; i < batch.length; i++) flat.set(batch[i], i * STORED_WORDS);
    this.inFlight++;
    this.counters.batches++;
    this.counters.lastBatchSize = batch.length;
    this.onBatchSize?.(batch.length);
    this.store.apply(flat, batch.length).then(
      () => this.confirmed(batch),
      (err: unknown) => this.failed(batch, err),
    );
  }

  private confirmed(batch: Uint32Array[]): void {
    this.inFlight--;
    this.counters.written += batch.length;
    for (const rec of batch) {
      const uk = userKey(rec[S_USER_LO], rec[S_USER_HI]);
      const rows = this.pending.get(uk);
      const ck = userKey(rec[S_RS + R_CHAN_LO], rec[S_RS + R_CHAN_HI]);
      // A newer record for the same read state may have arrived meanwhile: it stays pending.
      if (rows !== undefined && rows.get(ck) === rec) {
        rows.delete(ck);
        this.pendingCount--;
        if (rows.size === 0) this.pending.delete(uk);
      }
    }
    if (this.failing) {
      this.failing = false;
      this.backoff = this.backoffMs;
      this.onStateChange(false);
    }
    this.pump();
  }

  private failed(batch: Uint32Array[], err: unknown): void {
    this.inFlight--;
    this.counters.failures++;
    // Back to the front of the queue, in order; superseded records are skipped when sent.
    this.queue = batch.concat(this.queue.slice(this.queueHead));
    this.queueHead = 0;
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
    const batch: Uint32Array[] = [];
    while (batch.length < this.batchSize && this.queueHead < this.queue.length) {
      const rec = this.queue[this.queueHead++];
      if (this.isCurrent(rec)) batch.push(rec);
    }
    if (batch.length > 0) this.send(batch);
    else {
      this.failing = false;
      this.backoff = this.backoffMs;
      this.onStateChange(false);
      this.checkDrained();
    }
  }

  private checkDrained(): void {
    if (this.pendingCount === 0 && this.inFlight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Resolves true once everything submitted is confirmed, false if `timeoutMs` passes first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.pendingCount === 0 && this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  stats(): WriteBehindStats {
    return {
      pending: this.pendingCount,
      queued: this.queue.length - this.queueHead,
      inFlight: this.inFlight,
      storeFailing: this.failing,
      ...this.counters,
    };
  }

  /** Oldest pending write timestamp (µs), for tests and diagnostics. */
  oldestPendingTs(): number {
    let oldest = 0;
    for (const rows of this.pending.values()) {
      for (const rec of rows.values()) {
        const ts = join53(rec[S_TS_LO], rec[S_TS_HI]);
        if (oldest === 0 || ts < oldest) oldest = ts;
      }
    }
    return oldest;
  }

  close(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
