/**
 * The main thread's end of one shard: a single-thread piscina pool pinned to that shard, the
 * operations waiting for this event-loop turn's batch, and the tickets of operations in flight.
 *
 * Operations are written straight into a grow-only Uint32Array; at the end of the turn they go to
 * the worker as one transferred buffer (one message per shard per turn, not per request). Each op
 * carries a ticket: an index into `sinks`, recycled through a typed free stack. The number of
 * tickets is the shard's queue bound; when none is free the caller answers 503.
 *
 * If the shard worker dies (a crash, or a batch that failed inside it: that worker then exits),
 * every operation outstanding on the shard gets a retryable 503 and piscina starts a replacement
 * that re-attaches to the same slabs (workers/recovery.ts). The death itself is the one signal
 * acted on (piscina's 'workerDestroy', once per thread): rejected batches, failed replies and
 * 'error' events are all consequences of it, and a worker can die with no batch in flight while
 * operations wait in it behind a load. Tickets carry an 8-bit epoch in their top byte, bumped at
 * each restart, so a late result for a ticket that was already answered and reused is ignored.
 */
import { Piscina } from 'piscina';
import { GrowBuffer } from '../workers/grow-buffer.js';
import {
  LOAD_OK,
  LOAD_FAILED,
  OP_WORDS,
  O_TICKET,
  REPLY_HEADER_WORDS,
  REPLY_LOAD_WORDS,
  REPLY_MUTATION_WORDS,
  REPLY_RESULT_WORDS,
  REPLY_DIRTY,
  REPLY_FAILED,
  REPLY_JOURNAL_FLOOR,
  TASK_FLAGS,
  TF_FLUSH_ALL,
  TF_FLUSH_DUE,
  TF_STORE_DEGRADED,
  TF_FAULT_EXIT_AFTER_APPLY,
  TF_PENDING_FULL,
  RES_COUNT,
  RES_HEADER_WORDS,
  RES_STATUS,
  RES_TICKET,
  RS_WORDS,
  ST_INSUFFICIENT_STORAGE,
  ST_STORE_BACKLOG,
  STORED_WORDS,
  ST_UNAVAILABLE,
  TASK_HEADER_WORDS,
  TASK_LOAD_WORDS,
  TASK_OP_COUNT,
  STATS_TASK,
  type ShardStats,
} from '../workers/protocol.js';
import type { ShardBuffers } from '../workers/shard-memory.js';
import type { ShardJournalConfig, ShardWorkerData } from '../workers/shard-worker.js';
import type { WriteBehind } from './write-behind.js';

/** Receives the result of one operation: `buf[at..]` is a result record (see protocol.ts). */
export interface OpSink {
  onResult(index: number, buf: Uint32Array, at: number): void;
}

/** A result record for operations that never reached the worker or whose worker failed. */
const UNAVAILABLE = new Uint32Array([0, ST_UNAVAILABLE, 0, 0]);

export interface LaneOptions {
  shard: number;
  buffers: ShardBuffers;
  workerFile: string;
  maxQueue: number;
  flushDelayMs: number;
  maxReadStatesPerUser: number;
  journal: ShardJournalConfig | null;
  clockDir: string | null;
  clockFloorUs: number;
  clockSkewMs: number;
  writeBehind: WriteBehind;
  /**
   * After the worker died: applies the shard's journal to the store again (what the dying batch
   * evicted, deleted or snapshotted never reached this thread). Loads wait for it.
   */
  onRestart?: (shard: number) => Promise<void>;
  /** Called when this lane has something to send at the end of the turn. */
  schedule: () => void;
  onError: (err: unknown, shard: number) => void;
}

export class ShardLane {
  readonly shard: number;
  private readonly pool: Piscina;
  private readonly writeBehind: WriteBehind;
  private readonly schedule: () => void;
  private readonly onError: (err: unknown, shard: number) => void;
  private readonly ops = new GrowBuffer(OP_WORDS * 256);
  private opCount = 0;
  /** load sections ready to go with the next batch: [lo, hi, status, n, n * RS_WORDS] */
  private readonly loads = new GrowBuffer(256);
  private readonly sinks: (OpSink | undefined)[];
  private readonly sinkIndex: Uint32Array;
  private readonly freeTickets: Uint32Array;
  private freeTop: number;
  private readonly onReplyBound: (reply: Uint32Array) => void;
  /** TF_FLUSH_* flags for the next task. */
  private flags = 0;
  /** Read states dirty in the shard as of its last reply. */
  dirty = 0;
  /** The shard's oldest journal segment still needed, as of its last reply (journal-retirer.ts). */
  journalFloor = 0;
  /** Set while the journal is being handed over again after a restart: retire nothing meanwhile. */
  resubmitting: Promise<void> | null = null;
  private readonly onRestart: ((shard: number) => Promise<void>) | undefined;
  private flushAllWaiters: (() => void)[] = [];
  /** Batches sent and not answered yet. */
  inFlight = 0;
  private epoch = 0;
  /** Shard worker deaths seen (each one is followed by a replacement). */
  restarts = 0;
  private closed = false;
  /** Operations refused for lack of room (507, store backlog) since the router last looked. */
  refusedForRoom = 0;

  constructor(o: LaneOptions) {
    this.shard = o.shard;
    this.writeBehind = o.writeBehind;
    this.schedule = o.schedule;
    this.onError = o.onError;
    this.onRestart = o.onRestart;
    const data: ShardWorkerData = {
      shard: o.shard,
      buffers: o.buffers,
      flushDelayMs: o.flushDelayMs,
      maxReadStatesPerUser: o.maxReadStatesPerUser,
      journal: o.journal,
      clockDir: o.clockDir,
      clockFloorUs: o.clockFloorUs,
      clockSkewMs: o.clockSkewMs,
    };
    this.pool = new Piscina({
      filename: o.workerFile,
      name: 'default',
      minThreads: 1,
      maxThreads: 1,
      // The worker holds the shard's state: it must never be reaped for being idle.
      idleTimeout: Infinity,
      // Batches are pipelined; the worker runs them one at a time in arrival order anyway.
      concurrentTasksPerWorker: 64,
      // 'sync' parks an idle worker in Atomics.wait, which would freeze its timers and async I/O.
      atomics: 'disabled',
      workerData: data,
    });
    // Errors not tied to a task (e.g. a worker dying between tasks) must not crash the process.
    this.pool.on('error', (err: unknown) => {
      if (!this.closed) this.onError(err, this.shard);
    });
    // Fires once per thread that leaves the pool; with idleTimeout Infinity only a death does that.
    this.pool.on('workerDestroy', () => {
      if (!this.closed) this.restart(new Error(`shard ${this.shard}: worker thread ended`));
    });
    this.sinks = new Array<OpSink | undefined>(o.maxQueue).fill(undefined);
    this.sinkIndex = new Uint32Array(o.maxQueue);
    this.freeTickets = new Uint32Array(o.maxQueue);
    for (let i = 0; i < o.maxQueue; i++) this.freeTickets[i] = o.maxQueue - 1 - i;
    this.freeTop = o.maxQueue;
    this.onReplyBound = this.onReply.bind(this);
  }

  /** Tickets left before this shard's queue is full. */
  get freeSlots(): number {
    return this.freeTop;
  }

  /** Operations queued or in flight on this shard. */
  get depth(): number {
    return this.sinks.length - this.freeTop;
  }

  /**
   * Reserves room for one operation and returns the offset of its words in `this.opWords`
   * (read `opWords` after calling: reserving may grow it), or -1 when the queue is full.
   */
  reserve(sink: OpSink, index: number): number {
    if (this.freeTop === 0) return -1;
    const ticket = this.freeTickets[--this.freeTop];
    this.sinks[ticket] = sink;
    this.sinkIndex[ticket] = index;
    // The caller (ShardRouter.submit) writes every other word of the op.
    const at = this.ops.reserve(OP_WORDS);
    this.ops.buf[at + O_TICKET] = (ticket | (this.epoch << 24)) >>> 0;
    if (this.opCount++ === 0) this.schedule();
    return at;
  }

  get opWords(): Uint32Array {
    return this.ops.buf;
  }

  /** Timer tick: the next task asks the worker for read states whose flush delay has passed. */
  tick(): void {
    if (this.dirty === 0 && this.flags === 0) return;
    this.flags |= TF_FLUSH_DUE;
    this.schedule();
  }

  /** Resolves once the worker reports nothing dirty (every change handed to the write-behind). */
  flushAll(): Promise<void> {
    return new Promise((resolve) => {
      this.flushAllWaiters.push(resolve);
      this.flags |= TF_FLUSH_ALL;
      this.schedule();
    });
  }

  /** Sends this turn's operations and completed loads to the worker as one task. */
  flush(): void {
    if (this.opCount === 0 && this.loads.len === 0 && this.flags === 0) return;
    const task = new Uint32Array(TASK_HEADER_WORDS + this.ops.len + this.loads.len);
    task[TASK_OP_COUNT] = this.opCount;
    task[TASK_LOAD_WORDS] = this.loads.len;
    const wb = this.writeBehind;
    task[TASK_FLAGS] = this.flags | (wb.degraded ? TF_STORE_DEGRADED : 0) | (wb.pendingFull ? TF_PENDING_FULL : 0);
    this.flags = 0;
    task.set(this.ops.buf.subarray(0, this.ops.len), TASK_HEADER_WORDS);
    task.set(this.loads.buf.subarray(0, this.loads.len), TASK_HEADER_WORDS + this.ops.len);
    this.ops.len = 0;
    this.opCount = 0;
    this.loads.len = 0;
    this.inFlight++;
    const restarts = this.restarts;
    this.pool.run(task, { transferList: [task.buffer] }).then(this.onReplyBound, (err: unknown) => this.onFailure(err, restarts));
  }

  private onReply(reply: Uint32Array): void {
    this.inFlight--;
    const loadsAt = REPLY_HEADER_WORDS + reply[REPLY_RESULT_WORDS];
    // Store mutations first: a user evicted in this batch may be asked for again in this batch,
    // and its load must see what the eviction wrote.
    const mutationsAt = this.takeMutations(reply);
    // The worker is exiting; its death answers this batch's operations with everything else.
    if (reply[REPLY_FAILED] !== 0) return;
    if (this.flushAllWaiters.length > 0) this.continueFlushAll();
    let at = REPLY_HEADER_WORDS;
    while (at < loadsAt) {
      this.complete(reply[at + RES_TICKET], reply, at);
      at += RES_HEADER_WORDS + reply[at + RES_COUNT] * RS_WORDS;
    }
    for (let i = loadsAt; i < mutationsAt; i += 2) this.load(reply[i], reply[i + 1]);
  }

  /** Hands a reply's store mutations to the write-behind; returns where they start. */
  private takeMutations(reply: Uint32Array): number {
    const mutationsAt = REPLY_HEADER_WORDS + reply[REPLY_RESULT_WORDS] + reply[REPLY_LOAD_WORDS];
    const mutationWords = reply[REPLY_MUTATION_WORDS];
    if (mutationWords > 0) this.writeBehind.submit(reply.subarray(mutationsAt, mutationsAt + mutationWords), mutationWords / STORED_WORDS);
    this.dirty = reply[REPLY_DIRTY];
    // After the mutations went to the write-behind: the retirer's barrier must include them.
    this.journalFloor = reply[REPLY_JOURNAL_FLOOR];
    return mutationsAt;
  }

  private continueFlushAll(): void {
    if (this.dirty === 0) {
      const waiters = this.flushAllWaiters;
      this.flushAllWaiters = [];
      for (const w of waiters) w();
    } else {
      // More than one reply's worth, or the store is degraded (then the next tick asks again).
      this.flags |= TF_FLUSH_ALL;
      if (!this.writeBehind.degraded) this.schedule();
    }
  }

  private complete(word: number, buf: Uint32Array, at: number): void {
    if (word >>> 24 !== this.epoch) return; // answered already, before a worker restart
    this.answer(word & 0xffffff, buf, at);
  }

  private answer(ticket: number, buf: Uint32Array, at: number): void {
    const status = buf[at + RES_STATUS];
    if (status === ST_INSUFFICIENT_STORAGE || status === ST_STORE_BACKLOG) this.refusedForRoom++;
    const sink = this.sinks[ticket];
    if (sink === undefined) return;
    this.sinks[ticket] = undefined;
    this.freeTickets[this.freeTop++] = ticket;
    sink.onResult(this.sinkIndex[ticket], buf, at);
  }

  /** Rare path (a miss): fetch the user from the store and queue it for the next batch. */
  private load(lo: number, hi: number): void {
    if (this.resubmitting !== null) {
      // The store and the pending overlay may lack what the dead worker evicted: wait for it.
      void this.resubmitting.then(() => this.load(lo, hi));
      return;
    }
    this.writeBehind.load(lo, hi).then(
      (records) => this.queueLoad(lo, hi, LOAD_OK, records),
      // Counted in the store metrics; the parked operations get a retryable 503.
      () => this.queueLoad(lo, hi, LOAD_FAILED, new Uint32Array(0)),
    );
  }

  private queueLoad(lo: number, hi: number, status: number, records: Uint32Array): void {
    this.schedule();
    const at = this.loads.reserve(4 + records.length);
    const b = this.loads.buf;
    b[at] = lo;
    b[at + 1] = hi;
    b[at + 2] = status;
    b[at + 3] = records.length / RS_WORDS;
    b.set(records, at + 4);
  }

  /**
   * The task was rejected. Normally its worker died under it and restart() has run already (the
   * death is handled before piscina rejects the dead thread's tasks). A task rejected by a worker
   * still alive leaves its operations unanswered and the shard in an unknown state: end that
   * worker, so its death answers them and a replacement checks the slabs.
   */
  private onFailure(err: unknown, restartsAtSend: number): void {
    this.inFlight--;
    if (this.closed || this.restarts !== restartsAtSend) return;
    this.onError(err, this.shard);
    void this.pool.threads[0]?.terminate();
  }

  /**
   * Everything outstanding on this shard was lost with the worker, or may have been: answer it
   * with a retryable 503. Operations not sent yet are dropped too (they would reach the new
   * worker under tickets that have been answered). Completed loads are kept: the replacement
   * worker installs only users it is loading itself.
   */
  private restart(err: unknown): void {
    this.restarts++;
    this.onError(err, this.shard);
    this.epoch = (this.epoch + 1) & 0xff;
    this.ops.len = 0;
    this.opCount = 0;
    this.failAll();
    this.flags |= TF_FLUSH_DUE;
    this.schedule();
    if (this.onRestart !== undefined) {
      const done = this.onRestart(this.shard).then(
        () => {
          if (this.resubmitting === done) this.resubmitting = null;
        },
        (e: unknown) => {
          if (this.resubmitting === done) this.resubmitting = null;
          this.onError(e, this.shard);
        },
      );
      this.resubmitting = done;
    }
  }


  /** Answers every operation still waiting on this shard with 503 (used at shutdown). */
  failAll(): void {
    for (let t = 0; t < this.sinks.length; t++) if (this.sinks[t] !== undefined) this.answer(t, UNAVAILABLE, 0);
  }

  /** Fault injection: the worker dies right after applying the next batch (see the flag). */
  exitAfterNextBatch(): void {
    this.flags |= TF_FAULT_EXIT_AFTER_APPLY;
  }

  /**
   * Terminates the shard's worker thread as a crash would (operations and tests use this). Waits
   * for the worker to answer first: piscina replaces a thread that dies after it started, while one
   * killed during its start-up is taken for a broken worker file and not replaced until the next
   * task. Resolves once the death has been handled (restarts counted, operations answered).
   */
  async killWorker(): Promise<void> {
    if (!(await this.ping(30_000))) throw new Error(`shard ${this.shard}: worker not answering, not killed`);
    await this.pool.threads[0]?.terminate();
  }

  /** The shard's own figures; `collect` runs a full GC in the worker first (tests, benches). */
  stats(collect = false, resetDelay = false): Promise<ShardStats> {
    const task = new Uint32Array(TASK_HEADER_WORDS);
    task[TASK_OP_COUNT] = STATS_TASK;
    task[TASK_LOAD_WORDS] = (collect ? 1 : 0) | (resetDelay ? 2 : 0);
    return this.pool.run(task) as Promise<ShardStats>;
  }

  /**
   * Resolves true when the worker answers an empty batch within `timeoutMs`. An empty batch is
   * still a batch: it carries the store's state, and what it flushes (with no flush delay the
   * worker flushes on every batch) goes to the write-behind like any reply's mutations.
   */
  async ping(timeoutMs: number): Promise<boolean> {
    const task = new Uint32Array(TASK_HEADER_WORDS);
    task[TASK_FLAGS] = this.writeBehind.degraded ? TF_STORE_DEGRADED : 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, false);
    });
    const answered = (reply: Uint32Array): boolean => {
      this.takeMutations(reply);
      return true;
    };
    try {
      return await Promise.race([this.pool.run(task).then(answered, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.destroy();
  }
}
