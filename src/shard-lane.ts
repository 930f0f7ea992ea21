/**
 * The main thread's end of one shard: a single-thread piscina pool pinned to that shard, the
 * operations waiting for this event-loop turn's batch, and the tickets of operations in flight.
 *
 * Operations are written straight into a grow-only Uint32Array; at the end of the turn they go to
 * the worker as one transferred buffer on the lane's ops port (one message per shard per turn, not
 * per request), and every answer comes back on its results port. piscina starts the worker, hands
 * it the ports and reports its death; it carries no batch, because a piscina task per turn (its
 * task object, promise and own messaging) was a sixth of the HTTP thread's busy time at 3,000
 * req/s, where nearly every request is a turn of its own. Each op
 * carries a ticket: an index into `sinks`, recycled through a typed free stack. The number of
 * tickets is the shard's queue bound; when none is free the caller answers 503. Results come
 * back in the batch's reply, or, for operations that waited for their user's load, later on the
 * same port: the worker gets loaded users straight from the store thread and pushes those
 * answers itself, in the same reply format. Nothing of the store path passes through this thread.
 *
 * If the shard worker dies (a crash, or a batch that failed inside it: that worker then exits),
 * every operation outstanding on the shard is answered from the worker's crash ledger (applied,
 * may have been applied, not applied: workers/crash-ledger.ts) and piscina starts a replacement
 * that re-attaches to the same slabs (workers/recovery.ts). The death itself is the one signal
 * acted on (piscina's 'workerDestroy', once per thread): rejected batches, failed replies and
 * 'error' events are all consequences of it, and a worker can die with no batch in flight while
 * operations wait in it behind a load. Tickets carry an 8-bit epoch in their top byte, bumped at
 * each restart, so a late result for a ticket that was already answered and reused is ignored.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { GrowBuffer } from '../workers/grow-buffer.js';
import { OpFlag, OpWord, Opcode, ReplyWord, ResultStatus, ResultWord, RsWord, StatsFlag, TaskFlag, TaskWord, STATS_TASK, type ShardStats } from '../workers/protocol.js';
import { NOT_DONE, rescued } from '../workers/crash-ledger.js';
import { FRAME_HEADER_WORDS } from '../workers/journal-format.js';
import { H_EXECUTING, H_EXECUTING_TICKET, H_IDLE_COLLECTIONS, H_LEDGER_JOURNAL_LEN, H_STORE_SEQ, type ShardBuffers } from '../workers/shard-memory.js';
import type { ShardAttach, ShardJournalConfig, ShardWorkerData } from '../workers/shard-worker.js';
import type { StoreLink } from './store/store-link.js';
import type { FenceBuffers } from '../workers/cluster-fence.js';

/**
 * Receives the result of one operation: `buf[at..]` is a result record (see protocol.ts). `buf`
 * is never written again once handed to a sink (a reply as the worker sent it, a fresh record, or
 * a constant one), so a sink may keep it until it answers.
 */
export interface OpSink {
  onResult(index: number, buf: Uint32Array, at: number): void;
}

/** Result records for operations whose worker died: applying this one (may be half made)... */
const UNAVAILABLE = new Uint32Array([0, ResultStatus.Unavailable, 0, 0]);
/** ...and those it had not applied (or never received). */
const NOT_APPLIED = new Uint32Array([0, ResultStatus.NotApplied, 0, 0]);

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
  /** the store thread: the worker posts its records and misses to it on a port of its own */
  store: StoreLink;
  /** cluster mode: the fence whose drop marks TaskFlag.DiscardUsers reads; null otherwise */
  fence: FenceBuffers | null;
  /**
   * After the worker died: applies the shard's journal to the store again (what the dying batch
   * evicted, deleted or snapshotted never reached the store). Its loads wait for it.
   */
  onRestart?: (shard: number) => Promise<void>;
  /**
   * After the worker died: the journal records of the batch it was applying (from the crash
   * ledger). Must make them durable before returning (the ops they belong to are then answered as
   * applied) and hand them to the store.
   */
  onRescue: (shard: number, records: Uint32Array) => void;
  /** Called when this lane has something to send at the end of the turn. */
  schedule: () => void;
  onError: (err: unknown, shard: number) => void;
}

export class ShardLane {
  readonly shard: number;
  private readonly pool: Piscina;
  private readonly store: StoreLink;
  /** this worker's results port: every reply, batch answers and answers pushed after loads */
  private results: MessagePort | null = null;
  private readonly onReplyBound: (reply: Uint32Array) => void;
  /** batches to the worker (replaced with the worker) */
  private opsPort: MessagePort | null = null;
  /** number of the last batch sent (TaskWord.Batch; never 0) */
  private batchSeq = 0;
  /** callers waiting for the reply to one batch, by its number (rare: cluster discards) */
  private readonly batchWaiters = new Map<number, { resolve: (reply: Uint32Array) => void; reject: (err: Error) => void }>();
  private readonly schedule: () => void;
  private readonly onError: (err: unknown, shard: number) => void;
  private readonly ops = new GrowBuffer(OpWord.Size * 256);
  private opCount = 0;
  private readonly sinks: (OpSink | undefined)[];
  private readonly sinkIndex: Uint32Array;
  private readonly freeTickets: Uint32Array;
  private freeTop: number;
  /** TF_FLUSH_* flags for the next task. */
  private flags = 0;
  /** fault injection: flags for the next task that carries ops (a timer tick's task does not) */
  private faultFlags = 0;
  /** Read states dirty in the shard as of its last reply. */
  dirty = 0;
  /** The shard's oldest journal segment still needed, as of its last reply (journal-retirer.ts). */
  journalFloor = 0;
  /** Set while the shard's journal is applied to the store again after a restart: its loads wait, nothing is retired. */
  reapplying: Promise<void> | null = null;
  private readonly onRestart: ((shard: number) => Promise<void>) | undefined;
  private readonly onRescue: (shard: number, records: Uint32Array) => void;
  /** the crash ledger (workers/crash-ledger.ts) and the shard header it uses */
  private readonly header: Int32Array;
  private readonly done: Uint32Array;
  private readonly outcome: Uint32Array;
  private readonly ledgerJournal: Uint32Array;
  /** each outstanding ticket's op as sent, to re-read the state of an op the dead worker applied */
  private readonly ticketOps: Uint32Array;
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
    this.store = o.store;
    this.schedule = o.schedule;
    this.onError = o.onError;
    this.onRestart = o.onRestart;
    this.onRescue = o.onRescue;
    this.header = new Int32Array(o.buffers.header);
    this.done = new Uint32Array(o.buffers.ledger.done);
    this.outcome = new Uint32Array(o.buffers.ledger.outcome);
    this.ledgerJournal = new Uint32Array(o.buffers.ledger.journal);
    this.ticketOps = new Uint32Array(o.maxQueue * OpWord.Size);
    const data: ShardWorkerData = {
      shard: o.shard,
      buffers: o.buffers,
      flushDelayMs: o.flushDelayMs,
      maxReadStatesPerUser: o.maxReadStatesPerUser,
      journal: o.journal,
      clockDir: o.clockDir,
      clockFloorUs: o.clockFloorUs,
      clockSkewMs: o.clockSkewMs,
      fence: o.fence,
      storeStatus: o.store.statusBuffer,
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
    this.onReplyBound = this.takeReply.bind(this);
    this.attachPorts(false);
  }

  /**
   * Gives the worker its ports, as its first task: a results port and a port to the store host
   * (a new worker), or only a new store port (the store thread was replaced).
   */
  private attachPorts(storeRestarted: boolean): void {
    const store = new MessageChannel();
    const task: ShardAttach = { storePort: store.port2, storeRestarted };
    const transferList: MessagePort[] = [store.port2];
    if (!storeRestarted) {
      // A dead worker's late answers were answered from its ledger already: drop them.
      this.results?.close();
      const results = new MessageChannel();
      results.port1.on('message', this.onReplyBound);
      results.port1.unref();
      this.results = results.port1;
      task.resultsPort = results.port2;
      this.opsPort?.close();
      const ops = new MessageChannel();
      this.opsPort = ops.port1;
      task.opsPort = ops.port2;
      transferList.push(results.port2, ops.port2);
    }
    this.store.attach(this.shard, store.port1).catch((err: unknown) => this.onError(err, this.shard));
    this.pool.run(task, { transferList }).catch(() => {});
  }

  /** The store thread was replaced: the worker talks to the new one, and asks again for its loads. */
  storeRestarted(): void {
    if (!this.closed) this.attachPorts(true);
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
    this.done[ticket] = NOT_DONE;
    // The caller (ShardRouter.submit) writes every other word of the op.
    const at = this.ops.reserve(OpWord.Size);
    this.ops.buf[at + OpWord.Ticket] = (ticket | (this.epoch << 24)) >>> 0;
    if (this.opCount++ === 0) this.schedule();
    return at;
  }

  /** Operations queued for the next task. */
  get queuedOps(): number {
    return this.opCount;
  }

  get opWords(): Uint32Array {
    return this.ops.buf;
  }

  /** Timer tick: the next task asks the worker for read states whose flush delay has passed. */
  tick(): void {
    if (this.dirty === 0 && this.flags === 0) return;
    this.flags |= TaskFlag.FlushDue;
    this.schedule();
  }

  /** A figure that moves while the worker works without ops from here (write-back, loads, its idle collection). */
  get backgroundActivity(): number {
    return this.header[H_STORE_SEQ] + this.header[H_IDLE_COLLECTIONS];
  }

  /** Gives back the op buffer a burst grew (the HTTP thread is idle: nothing is queued). */
  trimScratch(): void {
    this.ops.trim();
  }

  /** Resolves once the worker reports nothing dirty (every change handed to the write-behind). */
  flushAll(): Promise<void> {
    return new Promise((resolve) => {
      this.flushAllWaiters.push(resolve);
      this.flags |= TaskFlag.FlushAll;
      this.schedule();
    });
  }

  /** Sends this turn's operations to the worker as one task. */
  flush(): void {
    if (this.opCount === 0 && this.flags === 0) return;
    const task = new Uint32Array(TaskWord.HeaderSize + this.ops.len);
    task[TaskWord.OpCount] = this.opCount;
    task[TaskWord.Flags] = this.flags;
    this.flags = 0;
    if (this.faultFlags !== 0 && this.opCount > 0) {
      task[TaskWord.Flags] |= this.faultFlags;
      this.faultFlags = 0;
    }
    task.set(this.ops.buf.subarray(0, this.ops.len), TaskWord.HeaderSize);
    this.keepOps();
    this.ops.len = 0;
    this.opCount = 0;
    this.send(task);
  }

  /** Posts one batch (its buffer is transferred) and returns its number. */
  private send(task: Uint32Array): number {
    this.batchSeq = this.batchSeq === 0xffffffff ? 1 : this.batchSeq + 1;
    task[TaskWord.Batch] = this.batchSeq;
    // An unanswered batch keeps the process alive (a shutdown's flush waits on it); an idle lane does not.
    if (this.inFlight++ === 0) this.results?.ref();
    this.opsPort!.postMessage(task, [task.buffer as ArrayBuffer]);
    return this.batchSeq;
  }

  /** A batch's reply, or answers the worker pushed after loads completed parked ops. */
  private takeReply(reply: Uint32Array): void {
    const batch = reply[ReplyWord.Batch];
    if (batch !== 0) {
      if (--this.inFlight === 0) this.results?.unref();
      if (this.batchWaiters.size > 0) this.resolveWaiter(batch, reply);
    }
    this.takeState(reply);
    // The worker is exiting; its death answers this batch's operations with everything else.
    if (reply[ReplyWord.Failed] !== 0) return;
    if (this.flushAllWaiters.length > 0) this.continueFlushAll();
    const end = ReplyWord.HeaderSize + reply[ReplyWord.ResultWords];
    let at = ReplyWord.HeaderSize;
    while (at < end) {
      this.complete(reply[at + ResultWord.Ticket], reply, at);
      at += ResultWord.HeaderSize + reply[at + ResultWord.Count] * RsWord.Size;
    }
  }

  /** What a reply says of the shard: dirty read states, the journal floor, a flush to continue. */
  private takeState(reply: Uint32Array): void {
    this.dirty = reply[ReplyWord.Dirty];
    // The worker posted its store records before this reply: the retirer's barrier counts them.
    this.journalFloor = reply[ReplyWord.JournalFloor];
    // A due wave comes in slices, one per turn, instead of waiting for the next timer tick.
    if (reply[ReplyWord.FlushBehind] !== 0 && !this.store.degraded) {
      this.flags |= TaskFlag.FlushBehind;
      this.schedule();
    }
  }

  private continueFlushAll(): void {
    if (this.dirty === 0) {
      const waiters = this.flushAllWaiters;
      this.flushAllWaiters = [];
      for (const w of waiters) w();
    } else {
      // More than one reply's worth, or the store is degraded (then the next tick asks again).
      this.flags |= TaskFlag.FlushAll;
      if (!this.store.degraded) this.schedule();
    }
  }

  private complete(word: number, buf: Uint32Array, at: number): void {
    if (word >>> 24 !== this.epoch) return; // answered already, before a worker restart
    this.answer(word & 0xffffff, buf, at);
  }

  private answer(ticket: number, buf: Uint32Array, at: number): void {
    const status = buf[at + ResultWord.Status];
    if (status === ResultStatus.InsufficientStorage || status === ResultStatus.StoreBacklog) this.refusedForRoom++;
    const sink = this.sinks[ticket];
    if (sink === undefined) return;
    this.sinks[ticket] = undefined;
    this.freeTickets[this.freeTop++] = ticket;
    sink.onResult(this.sinkIndex[ticket], buf, at);
  }

  private resolveWaiter(batch: number, reply: Uint32Array): void {
    const w = this.batchWaiters.get(batch);
    if (w === undefined) return;
    this.batchWaiters.delete(batch);
    w.resolve(reply);
  }

  /**
   * The worker died: answer everything outstanding from its ledger (answerFromLedger); ops not
   * sent yet are refused as not applied (they would reach the new worker under tickets that have
   * been answered). The replacement gets ports of its own; loads answered for its predecessor are
   * installed only for users it is loading itself.
   */
  private restart(err: unknown): void {
    this.restarts++;
    this.onError(err, this.shard);
    // The dead worker's batches get no reply: their ops are answered from the ledger below.
    this.inFlight = 0;
    this.results?.unref();
    for (const w of this.batchWaiters.values()) w.reject(new Error(`shard ${this.shard}: worker died before answering`));
    this.batchWaiters.clear();
    // Before the new worker's port is attached: the host holds its loads until the journal is in.
    if (this.onRestart !== undefined) this.store.gate(this.shard, true).catch(() => {});
    this.answerFromLedger();
    // Not from inside piscina's 'workerDestroy': the dead thread is still in the pool until it returns.
    queueMicrotask(() => this.attachPorts(false));
    this.flags |= TaskFlag.FlushDue;
    this.schedule();
    if (this.onRestart !== undefined) {
      const done = this.onRestart(this.shard).then(
        () => {
          if (this.reapplying === done) this.reapplying = null;
        },
        (e: unknown) => {
          if (this.reapplying === done) this.reapplying = null;
          this.onError(e, this.shard);
        },
      );
      this.reapplying = done;
      void done.finally(() => this.store.gate(this.shard, false).catch(() => {}));
    }
  }

  /** Copies this batch's ops by ticket: after a death, an applied op's state is read again. */
  private keepOps(): void {
    const ops = this.ops.buf;
    const kept = this.ticketOps;
    for (let o = 0; o < this.ops.len; o += OpWord.Size) {
      const d = (ops[o + OpWord.Ticket] & 0xffffff) * OpWord.Size;
      for (let j = 0; j < OpWord.Size; j++) kept[d + j] = ops[o + j];
    }
  }

  /**
   * The worker died: answers every outstanding op from the crash ledger. An op it applied whole is
   * answered as applied (its status, or its state read again from the replacement), once the
   * journal records of the batch it died in are durable; the op it was applying gets 503
   * SHARD_UNAVAILABLE (may have been applied); every other op 503 SHARD_RESTARTED (not applied).
   */
  private answerFromLedger(): void {
    const h = this.header;
    const oldEpoch = this.epoch;
    const executing = h[H_EXECUTING] === 1 ? h[H_EXECUTING_TICKET] >>> 0 : -1;
    const journalLen = h[H_LEDGER_JOURNAL_LEN];
    const records = journalLen > FRAME_HEADER_WORDS ? this.ledgerJournal.slice(FRAME_HEADER_WORDS, journalLen) : null;
    h[H_EXECUTING] = 0;
    // What the replacement may overwrite has been read: let it start.
    rescued(h);
    if (records !== null) this.onRescue(this.shard, records);
    this.epoch = (this.epoch + 1) & 0xff;
    this.ops.len = 0;
    this.opCount = 0;
    const reread: number[] = [];
    for (let t = 0; t < this.sinks.length; t++) {
      if (this.sinks[t] === undefined) continue;
      const word = (t | (oldEpoch << 24)) >>> 0;
      if (this.done[t] === word) {
        const status = this.outcome[t] & 0xffff;
        if (status === ResultStatus.Ok && (this.ticketOps[t * OpWord.Size + OpWord.Head] & OpFlag.NoBody) === 0) reread.push(t);
        else this.answer(t, new Uint32Array([word, status, this.outcome[t] >>> 16, 0]), 0);
      } else {
        this.answer(t, word === executing ? UNAVAILABLE : NOT_APPLIED, 0);
      }
    }
    for (const t of reread) this.rereadState(t);
  }

  /** Moves an applied op's answer to a fresh read of its read state (or user) on the replacement. */
  private rereadState(t: number): void {
    const sink = this.sinks[t]!;
    const index = this.sinkIndex[t];
    this.sinks[t] = undefined;
    this.freeTickets[this.freeTop++] = t;
    const src = t * OpWord.Size;
    const kept = this.ticketOps;
    const at = this.reserve(sink, index);
    const w = this.ops.buf;
    for (let j = 0; j < OpWord.Size; j++) if (j !== OpWord.Ticket) w[at + j] = 0;
    const opcode = kept[src + OpWord.Head] & Opcode.Mask;
    if (opcode === Opcode.GetAll || opcode === Opcode.Summary) {
      // reads with their own parameters (since, page): asked again as they were
      for (let j = 0; j < OpWord.Size; j++) if (j !== OpWord.Ticket) w[at + j] = kept[src + j];
      return;
    }
    w[at + OpWord.Head] = Opcode.Get;
    w[at + OpWord.UserLo] = kept[src + OpWord.UserLo];
    w[at + OpWord.UserHi] = kept[src + OpWord.UserHi];
    w[at + OpWord.ChanLo] = kept[src + OpWord.ChanLo];
    w[at + OpWord.ChanHi] = kept[src + OpWord.ChanHi];
  }

  /** Answers every operation still waiting on this shard with 503 (used at shutdown). */
  failAll(): void {
    for (let t = 0; t < this.sinks.length; t++) if (this.sinks[t] !== undefined) this.answer(t, UNAVAILABLE, 0);
  }

  /** Fault injection: the worker dies right after applying the next batch with ops (see the flag). */
  exitAfterNextBatch(): void {
    this.faultFlags = TaskFlag.FaultExitAfterApply;
  }

  /** Fault injection: the worker dies inside the second op of the next batch with ops. */
  exitInSecondOpOfNextBatch(): void {
    this.faultFlags = TaskFlag.FaultExitInSecondOp;
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
    const task = new Uint32Array(TaskWord.HeaderSize);
    task[TaskWord.OpCount] = STATS_TASK;
    task[TaskWord.Stats] = (collect ? StatsFlag.Collect : 0) | (resetDelay ? StatsFlag.ResetDelay : 0);
    return this.pool.run(task) as Promise<ShardStats>;
  }

  /**
   * Resolves true when the worker answers an empty batch within `timeoutMs`. An empty batch is
   * still a batch: what it flushes (with no flush delay the worker flushes on every batch) goes to
   * the store like any batch's records.
   */
  async ping(timeoutMs: number): Promise<boolean> {
    const task = new Uint32Array(TaskWord.HeaderSize);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(resolve, timeoutMs, false);
    });
    const answered = (reply: Uint32Array): boolean => {
      this.takeState(reply);
      return true;
    };
    try {
      return await Promise.race([this.pool.run(task).then(answered, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Cluster mode: the worker drops, unwritten, the cached users of the partitions the fence marks.
   * Sent as a task of its own, which runs after every batch sent before it.
   */
  async discardUsers(): Promise<void> {
    const task = new Uint32Array(TaskWord.HeaderSize);
    task[TaskWord.Flags] = TaskFlag.DiscardUsers;
    await new Promise<Uint32Array>((resolve, reject) => this.batchWaiters.set(this.send(task), { resolve, reject }));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.destroy();
    this.results?.close();
    this.opsPort?.close();
    for (const w of this.batchWaiters.values()) w.reject(new Error(`shard ${this.shard}: closed`));
    this.batchWaiters.clear();
  }
}
