/**
 * The store side of the data path: the write-behind (pending records, retries, the overlay that
 * loads see) and the store, serving the shards over one MessagePort each.
 *
 * A shard posts its changed read states (StoreMsg.Records) and its misses (StoreMsg.Loads) on its
 * port and gets the loaded users back on it (StoreMsg.Answers): a miss crosses two hand-offs and
 * the HTTP thread is not among them. Messages on one port arrive in order, so the records a shard
 * posted before a load (an eviction of the same user, say) are pending before the load runs.
 *
 * The host publishes its state in the status words (store-status.ts) for the shards (degraded,
 * pending full) and the main thread (pending, which shard messages it has taken). The main thread
 * asks for the rest (drain, journal barrier, figures) through the calls below: in the store worker
 * they arrive as tasks (store-worker.ts); with a store object handed to the service (tests) this
 * runs on the main thread itself, same code, same ports.
 */
import type { MessagePort } from 'node:worker_threads';
import { LoadStatus, RsWord, StoreMsg, StoreMsgWord, StoredWord } from './protocol.js';
import type { ReadStateStore } from './store/store.js';
import { S_DEGRADED, S_FAILING, S_PENDING, S_PENDING_FULL, S_RECEIVED, receivedAll } from './store-status.js';
import { WriteBehind, type WriteBehindOptions, type WriteBehindStats } from './write-behind.js';
import { BATCH_SIZE_BUCKETS, FixedHistogram, LOAD_SECONDS_BUCKETS, type HistogramSnapshot } from './fixed-histogram.js';

export type StoreHostOptions = Omit<WriteBehindOptions, 'onStateChange'>;

/** A change of the store's health, for the main thread's log. */
export interface StoreStateEvent {
  failing: boolean;
  error: string | null;
}

interface SeqWaiter {
  seqs: ArrayLike<number>;
  resolve: () => void;
}

export class StoreHost {
  readonly writeBehind: WriteBehind;
  private readonly status: Int32Array;
  private readonly ports: (MessagePort | null)[];
  /** per shard: loads held back while its journal is applied to the store again */
  private readonly held: (Uint32Array[] | null)[];
  private seqWaiters: SeqWaiter[] = [];
  /** seconds per user load and records per store write, summed here and read with stats() (metrics) */
  private readonly loadSeconds = new FixedHistogram(LOAD_SECONDS_BUCKETS);
  private readonly batchSizes = new FixedHistogram(BATCH_SIZE_BUCKETS);
  onStateChange: ((e: StoreStateEvent) => void) | null = null;

  constructor(store: ReadStateStore, status: SharedArrayBuffer, shards: number, o: StoreHostOptions = {}) {
    this.status = new Int32Array(status);
    this.ports = new Array<MessagePort | null>(shards).fill(null);
    this.held = new Array<Uint32Array[] | null>(shards).fill(null);
    this.writeBehind = new WriteBehind(store, {
      ...o,
      onStateChange: (failing, err) => {
        this.publish();
        this.onStateChange?.({ failing, error: err === undefined ? null : String((err as Error)?.message ?? err) });
      },
    });
    this.writeBehind.onSettled = () => this.publish();
    this.writeBehind.onLoadSeconds = (s) => this.loadSeconds.observe(s);
    this.writeBehind.onBatchSize = (n) => this.batchSizes.observe(n);
  }

  /**
   * Shard k talks on `port` from now on. An earlier port of a worker that died is left to drain:
   * what that worker posted before it died is still delivered, and is still to be written.
   */
  attach(shard: number, port: MessagePort): void {
    this.ports[shard] = port;
    port.on('message', (msg: Uint32Array) => this.onShardMessage(shard, port, msg));
    // The thread lives as long as its owner wants, not as long as a shard's port is open.
    port.unref();
  }

  private onShardMessage(shard: number, port: MessagePort, msg: Uint32Array): void {
    const count = msg[StoreMsgWord.Count];
    switch (msg[StoreMsgWord.Kind]) {
      case StoreMsg.Records:
        this.writeBehind.submit(msg.subarray(StoreMsgWord.HeaderSize), count);
        break;
      case StoreMsg.Loads: {
        const users = msg.subarray(StoreMsgWord.HeaderSize, StoreMsgWord.HeaderSize + 2 * count);
        const held = this.held[shard];
        if (held !== null) held.push(users);
        else this.load(shard, port, users);
        break;
      }
    }
    // A dead worker's port may still deliver after its replacement's first messages: never go back.
    const seq = msg[StoreMsgWord.Seq] | 0;
    if (seq - this.status[S_RECEIVED + shard] > 0) this.status[S_RECEIVED + shard] = seq;
    this.publish();
    if (this.seqWaiters.length > 0) this.checkSeqWaiters();
  }

  /** Loads the users and answers on the port they were asked on (a dead shard's go nowhere). */
  private load(shard: number, port: MessagePort, users: Uint32Array): void {
    this.writeBehind.loadMany(users).then(
      (records) => {
        let words = 0;
        for (const r of records) words += 4 + r.length;
        const msg = answers(words);
        let at = StoreMsgWord.HeaderSize;
        for (let u = 0; u < records.length; u++) at = section(msg, at, users[2 * u], users[2 * u + 1], LoadStatus.Ok, records[u]);
        this.answer(shard, port, msg);
      },
      () => {
        // Counted in the store figures; the parked operations get a retryable 503.
        const msg = answers((users.length / 2) * 4);
        let at = StoreMsgWord.HeaderSize;
        for (let i = 0; i < users.length; i += 2) at = section(msg, at, users[i], users[i + 1], LoadStatus.Failed, EMPTY);
        this.answer(shard, port, msg);
      },
    );
  }

  private answer(shard: number, port: MessagePort, msg: Uint32Array): void {
    // A replacement worker on a new port installs only users it is loading itself.
    const to = this.ports[shard] ?? port;
    to.postMessage(msg, [msg.buffer as ArrayBuffer]);
  }

  /** Holds shard k's loads (its journal is being applied again) until gate(k, false). */
  gate(shard: number, on: boolean): void {
    if (on) {
      this.held[shard] ??= [];
      return;
    }
    const held = this.held[shard];
    this.held[shard] = null;
    const port = this.ports[shard];
    if (held !== null && port !== null) for (const users of held) this.load(shard, port, users);
  }

  /** Records from the main thread (a dead shard's rescued batch). */
  submit(records: Uint32Array): void {
    this.writeBehind.submit(records, records.length / StoredWord.Size);
    this.publish();
  }

  /** Resolves once the host has taken every shard message numbered up to `seqs` (per shard). */
  received(seqs: ArrayLike<number>): Promise<void> {
    if (receivedAll(this.status, seqs)) return Promise.resolve();
    return new Promise((resolve) => this.seqWaiters.push({ seqs, resolve }));
  }

  private checkSeqWaiters(): void {
    const keep: SeqWaiter[] = [];
    for (const w of this.seqWaiters) {
      if (receivedAll(this.status, w.seqs)) w.resolve();
      else keep.push(w);
    }
    this.seqWaiters = keep;
  }

  /**
   * True once everything the shards had posted up to `seqs` (and everything submitted) is
   * confirmed by the store; false if `timeoutMs` passes first.
   */
  async drain(seqs: ArrayLike<number>, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((r) => {
      timer = setTimeout(r, timeoutMs, false);
    });
    try {
      if (!(await Promise.race([this.received(seqs).then(() => true), late]))) return false;
    } finally {
      clearTimeout(timer);
    }
    return this.writeBehind.drain(Math.max(0, deadline - Date.now()));
  }

  /** The journal retirer's barrier (write-behind.ts startBarrier), after the shards' messages up to `seqs`. */
  async startBarrier(seqs: ArrayLike<number>): Promise<void> {
    await this.received(seqs);
    this.writeBehind.startBarrier();
  }

  get barrierPassed(): boolean {
    return this.writeBehind.barrierPassed;
  }

  stats(): StoreHostStats {
    return { ...this.writeBehind.stats(), loadHistogram: this.loadSeconds.snapshot(), batchSizes: this.batchSizes.snapshot() };
  }

  /** Writes the state the shards and the main thread read (store-status.ts). */
  private publish(): void {
    const wb = this.writeBehind;
    const s = this.status;
    s[S_DEGRADED] = wb.degraded ? 1 : 0;
    s[S_PENDING_FULL] = wb.pendingFull ? 1 : 0;
    s[S_FAILING] = wb.storeFailing ? 1 : 0;
    s[S_PENDING] = wb.pendingRecords;
  }

  close(): void {
    this.writeBehind.close();
    for (const p of this.ports) p?.close();
  }
}

export interface StoreHostStats extends WriteBehindStats {
  loadHistogram: HistogramSnapshot;
  batchSizes: HistogramSnapshot;
}

const EMPTY = new Uint32Array(0);

function answers(sectionWords: number): Uint32Array {
  const msg = new Uint32Array(StoreMsgWord.HeaderSize + sectionWords);
  msg[StoreMsgWord.Kind] = StoreMsg.Answers;
  msg[StoreMsgWord.Count] = sectionWords;
  return msg;
}

/** Appends one user's load section entry [lo, hi, status, n, n * RsWord.Size]; returns the end. */
function section(msg: Uint32Array, at: number, lo: number, hi: number, status: number, records: Uint32Array): number {
  msg[at] = lo;
  msg[at + 1] = hi;
  msg[at + 2] = status;
  msg[at + 3] = records.length / RsWord.Size;
  msg.set(records, at + 4);
  return at + 4 + records.length;
}
