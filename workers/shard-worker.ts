/**
 * Shard worker entry point (piscina loads this file). One worker owns one shard for its whole
 * life: the pool that runs it has exactly one thread that is never reaped, so the slabs it
 * attaches to here are its own. piscina starts it and hands it its ports (the first task);
 * batches of encoded operations then arrive on the ops port, one transferred buffer each, and
 * every reply leaves on the results port. Changed read states and misses go straight to the store
 * host on this shard's store port; loaded users come back on it, and the answers of the
 * operations parked behind them go to the main thread on the results port too.
 */
import { setFlagsFromString } from 'node:v8';
import type { MessagePort } from 'node:worker_threads';
import { runInNewContext } from 'node:vm';
import { move, workerData } from 'piscina';
import { join } from 'node:path';
import { ShardEngine } from './engine.js';
import { collectGarbage } from './collect-garbage.js';
import { IDLE_CHECK_MS, IdleCollector } from './idle-collector.js';
import { HybridClock, clockFileName } from './hybrid-clock.js';
import { ShardJournal } from './journal.js';
import { awaitRescue } from './crash-ledger.js';
import { shardDirName } from './journal-format.js';
import { OpWord, ReplyWord, StatsFlag, StoreMsg, StoreMsgWord, StoredWord, TaskFlag, TaskWord, STATS_TASK, type ShardStats } from './protocol.js';
import { S_DEGRADED, S_PENDING_FULL } from './store-status.js';
import { hasState, recoverShard } from './recovery.js';
import { Fence, type FenceBuffers } from './cluster-fence.js';
import { TelemetryRecorder } from './thread-telemetry.js';
import { H_CLOCK_BACK_STEPS, H_EXECUTING, H_EXECUTING_TICKET, H_DIRTY, H_IDLE_COLLECTIONS, H_MUTATING, H_RS_COUNT, H_STORE_SEQ, H_USER_COUNT, attachShardMemory, type ShardBuffers } from './shard-memory.js';

export interface ShardJournalConfig {
  /** `<dataDir>/journal`: this shard writes `shard-<k>/` and `shard-<k>.clock` in it */
  dir: string;
  /** null: no fsync; 0: fsync before each reply; N: group commit every N ms */
  fsyncMs: number | null;
  segmentBytes: number;
  segmentMaxAgeMs: number;
}

export interface ShardWorkerData {
  shard: number;
  buffers: ShardBuffers;
  flushDelayMs: number;
  maxReadStatesPerUser: number;
  /** null: no redo journal (no durable store, or --journal off) */
  journal: ShardJournalConfig | null;
  /** `<dataDir>/journal` for the clock reservation; null without a durable store */
  clockDir: string | null;
  /** no write timestamp at or below this (µs): above everything a previous run handed out */
  clockFloorUs: number;
  /** added to the wall clock (fault injection: a clock that is off or steps) */
  clockSkewMs: number;
  /** cluster mode: which partitions' users to drop (TaskFlag.DiscardUsers); null otherwise */
  fence: FenceBuffers | null;
  /** the store host's status words (store-status.ts) */
  storeStatus: SharedArrayBuffer;
}

/** A task that hands the worker its ports (first task of every worker, and after a store restart). */
export interface ShardAttach {
  storePort?: MessagePort;
  /** the main thread's batches (a new worker) */
  opsPort?: MessagePort;
  resultsPort?: MessagePort;
  /** the store thread was replaced: the loads it had are gone, ask again */
  storeRestarted?: boolean;
}

const data = workerData as ShardWorkerData;
const telemetry = new TelemetryRecorder(`shard-${data.shard}`);
const memory = attachShardMemory(data.buffers);
// A replacement must not touch the crash ledger before the main thread has read its predecessor's.
awaitRescue(memory.header);
// A replacement for a worker that died finds the slabs filled: check and repair them first.
const recovery = hasState(memory) ? recoverShard(memory) : null;
const skew = data.clockSkewMs;
const now = skew === 0 ? Date.now : (): number => Date.now() + skew;
const jc = data.journal;
const clock = new HybridClock({
  header: memory.header,
  now,
  floorUs: data.clockFloorUs,
  reservationFile: data.clockDir === null ? null : join(data.clockDir, clockFileName(data.shard)),
  fsync: jc !== null && jc.fsyncMs !== null,
});
const engine = new ShardEngine(memory, { flushDelayMs: data.flushDelayMs, now, clock, journaling: jc !== null, maxReadStatesPerUser: data.maxReadStatesPerUser, ledger: data.buffers.ledger });
// What a burst left (a dirty ring a wave outgrew) is given back once the shard goes quiet.
const engineCounters = engine.counters;
new IdleCollector(
  () => engineCounters.hits + engineCounters.misses + engineCounters.flushed,
  IDLE_CHECK_MS,
  () => {
    engine.trimScratch();
    collectGarbage();
    Atomics.add(memory.header, H_IDLE_COLLECTIONS, 1);
  },
);
if (recovery !== null) {
  engine.rebuildDirtyQueue();
  process.emitWarning(`shard ${data.shard} recovered: ${JSON.stringify(recovery)}`);
}
const fence = data.fence === null ? null : new Fence(data.fence);
const dropsUser = fence === null ? (): boolean => false : (lo: number, hi: number): boolean => fence.dropsUser(lo, hi);
const journal =
  jc === null
    ? null
    : new ShardJournal(
        { dir: join(jc.dir, shardDirName(data.shard)), shard: data.shard, fsyncMs: jc.fsyncMs, segmentBytes: jc.segmentBytes, segmentMaxAgeMs: jc.segmentMaxAgeMs },
        engine.dirtyTail,
        now(),
      );

/**
 * `collect` runs a full GC first, so that heap figures show what is live (tests and benches ask
 * for it; worker threads cannot be started with --expose-gc, so the flag is set at run time).
 */
function stats(collect: boolean, resetDelay: boolean): ShardStats {
  if (collect) {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  }
  const heap = process.memoryUsage();
  const h = memory.header;
  return {
    shard: data.shard,
    readStates: h[H_RS_COUNT],
    users: h[H_USER_COUNT],
    capacity: memory.capacity,
    maxUsers: memory.maxUsers,
    dirty: h[H_DIRTY],
    oldestDirtyMs: engine.oldestDirtyAge(),
    loading: engine.loading,
    ...engine.counters,
    heapUsed: heap.heapUsed,
    heapTotal: heap.heapTotal,
    telemetry: telemetry.read(resetDelay),
    journal: journal === null ? null : { ...journal.counters },
    clockStepsBack: h[H_CLOCK_BACK_STEPS],
  };
}

const storeStatus = new Int32Array(data.storeStatus);
let storePort: MessagePort | null = null;
let resultsPort: MessagePort | null = null;
/** store messages made before the store port arrived (a replacement's first batches) */
const unsent: Uint32Array[] = [];

/** Set once a batch failed: until this worker exits, no batch may touch the slabs again. */
let failed = false;

/** piscina's tasks: the ports, stats, and pings (an empty batch, answered as the task's result). */
export default function runTask(task: Uint32Array | ShardAttach): unknown {
  if (!(task instanceof Uint32Array)) return attach(task);
  if (task[TaskWord.OpCount] === STATS_TASK) return stats((task[TaskWord.Stats] & StatsFlag.Collect) !== 0, (task[TaskWord.Stats] & StatsFlag.ResetDelay) !== 0);
  const reply = guarded(task, TaskWord.HeaderSize, task[TaskWord.OpCount], 0, 0, task[TaskWord.Flags]);
  return reply instanceof Promise ? reply.then(move) : move(reply);
}

function attach(a: ShardAttach): null {
  if (a.resultsPort !== undefined) {
    resultsPort = a.resultsPort;
    resultsPort.unref();
  }
  if (a.opsPort !== undefined) {
    a.opsPort.on('message', onBatch);
    a.opsPort.unref();
  }
  if (a.storePort !== undefined) {
    storePort?.close();
    const port = a.storePort;
    storePort = port;
    port.on('message', onStoreMessage);
    port.unref();
    for (const m of unsent) port.postMessage(m, [m.buffer as ArrayBuffer]);
    unsent.length = 0;
    if (a.storeRestarted === true) {
      const l = engine.loadRequests;
      engine.requestLoadsAgain();
      if (l.len > 0) postStore(StoreMsg.Loads, l.buf, l.len, l.len / 2);
      l.len = 0;
    }
    // Even with nothing to send: the host learns this shard's message number.
    postStore(StoreMsg.Records, engine.mutations.buf, 0, 0);
  }
  return null;
}

/** A batch from the main thread; its reply carries its number. */
function onBatch(task: Uint32Array): void {
  const batch = task[TaskWord.Batch];
  const reply = guarded(task, TaskWord.HeaderSize, task[TaskWord.OpCount], 0, 0, task[TaskWord.Flags]);
  if (!(reply instanceof Promise)) return sendReply(reply, batch);
  reply.then(
    (r) => sendReply(r, batch),
    (err: unknown) => {
      // Its journal frame may not be durable (a failed fsync): none of its ops may be answered as
      // applied by this worker. Its death answers them from the ledger.
      failed = true;
      process.emitWarning(`shard ${data.shard} journal sync failed, restarting the worker: ${String(err)}`);
      process.exit(70);
    },
  );
}

function sendReply(reply: Uint32Array, batch: number): void {
  reply[ReplyWord.Batch] = batch;
  resultsPort?.postMessage(reply, [reply.buffer as ArrayBuffer]);
}

/** Loaded users from the store host: install them, and push the parked operations' answers. */
function onStoreMessage(msg: Uint32Array): void {
  if (msg[StoreMsgWord.Kind] !== StoreMsg.Answers || failed) return;
  const at = StoreMsgWord.HeaderSize;
  const reply = guarded(msg, 0, 0, at, at + msg[StoreMsgWord.Count], 0);
  if (reply instanceof Promise) void reply.then(pushReply);
  else pushReply(reply);
}

function pushReply(reply: Uint32Array): void {
  sendReply(reply, 0);
}

/** One step; a throw leaves the slabs in an unknown state, so the worker ends (see below). */
function guarded(buf: Uint32Array, opsAt: number, opCount: number, loadsAt: number, loadsEnd: number, flags: number): Uint32Array | Promise<Uint32Array> {
  // Batches already queued behind the failed one would run on broken structures and, finishing,
  // clear H_MUTATING, so that the replacement would not rebuild them.
  if (failed) return buildReply(memory.header[H_DIRTY], 1);
  try {
    return step(buf, opsAt, opCount, loadsAt, loadsEnd, flags);
  } catch (err) {
    // A bug left this shard's structures in an unknown state. Hand over what the store must
    // still get (mutations already taken out of the slabs), answer nothing, and exit: the
    // replacement worker rebuilds the slabs' indexes (H_MUTATING is still 1) and re-flushes.
    failed = true;
    engine.results.len = 0;
    engine.loadRequests.len = 0;
    process.emitWarning(`shard ${data.shard} batch failed, restarting the worker: ${(err as Error).stack ?? String(err)}`);
    setImmediate(() => process.exit(70));
    try {
      // Nothing of this batch is answered, but its changes are in the slabs: keep them replayable.
      journal?.append(engine.journal.buf, engine.journalRecords);
    } catch {
      // the replacement re-flushes every cached read state anyway
    }
    return buildReply(memory.header[H_DIRTY], 1);
  }
}

/**
 * Applies loads (they complete users whose operations arrived earlier, which must be applied
 * before this batch's operations on the same users: those are parked behind them), then ops.
 */
function step(buf: Uint32Array, opsAt: number, opCount: number, loadsAt: number, loadsEnd: number, flags: number): Uint32Array | Promise<Uint32Array> {
  engine.degraded = storeStatus[S_DEGRADED] !== 0;
  engine.pendingFull = storeStatus[S_PENDING_FULL] !== 0;
  clock.beginBatch();
  journal?.beginBatch(engine.dirtyTail, now());
  memory.header[H_MUTATING] = 1;
  if ((flags & TaskFlag.DiscardUsers) !== 0) engine.discardUsers(dropsUser);
  if (loadsEnd > loadsAt) engine.installLoads(buf, loadsAt, loadsEnd);
  if ((flags & TaskFlag.FaultExitInSecondOp) !== 0 && opCount >= 2) dieInSecondOp(buf);
  engine.applyOps(buf, opsAt, opCount);
  let dirty = memory.header[H_DIRTY];
  if (!engine.degraded && dirty > 0) {
    if ((flags & TaskFlag.FlushAll) !== 0) dirty = engine.flushAll();
    else if ((flags & TaskFlag.FlushDue) !== 0 || engine.flushDelayMs === 0) dirty = engine.flushDue();
    else if ((flags & TaskFlag.FlushBehind) !== 0) dirty = engine.flushBehindSlice();
  }
  memory.header[H_MUTATING] = 0;
  clock.endBatch();
  if ((flags & TaskFlag.FaultExitAfterApply) !== 0) process.exit(70);
  // The journal write comes before the reply exists: no answer of this batch can be sent first.
  const durable = journal === null ? null : journal.append(engine.journal.buf, engine.journalRecords);
  const reply = buildReply(dirty);
  return durable === null ? reply : durable.then(() => reply);
}

/** Fault injection: applies the first op, then dies as if inside the second one. */
function dieInSecondOp(task: Uint32Array): never {
  engine.applyOp(task, TaskWord.HeaderSize);
  memory.header[H_EXECUTING_TICKET] = task[TaskWord.HeaderSize + OpWord.Size + OpWord.Ticket];
  memory.header[H_EXECUTING] = 1;
  process.exit(70);
}

/** Sends `words` of `src` to the store host as one numbered message (kept until the port arrives). */
function postStore(kind: StoreMsg, src: Uint32Array, words: number, count: number): void {
  const msg = new Uint32Array(StoreMsgWord.HeaderSize + words);
  msg[StoreMsgWord.Kind] = kind;
  msg[StoreMsgWord.Seq] = Atomics.add(memory.header, H_STORE_SEQ, 1) + 1;
  msg[StoreMsgWord.Count] = count;
  msg.set(src.subarray(0, words), StoreMsgWord.HeaderSize);
  if (storePort === null) unsent.push(msg);
  else storePort.postMessage(msg, [msg.buffer as ArrayBuffer]);
}

/**
 * The batch's answer. Its store records and misses leave first, on the store port: the reply
 * tells the main thread what is dirty and which journal segments are still needed, and by then
 * the records taken out of the slabs are on their way to the host (the journal retirer counts on it).
 */
function buildReply(dirty: number, failed = 0): Uint32Array {
  const mu = engine.mutations;
  const l = engine.loadRequests;
  if (mu.len > 0) postStore(StoreMsg.Records, mu.buf, mu.len, mu.len / StoredWord.Size);
  if (l.len > 0) postStore(StoreMsg.Loads, l.buf, l.len, l.len / 2);
  const r = engine.results;
  const reply = new Uint32Array(ReplyWord.HeaderSize + r.len);
  reply[ReplyWord.ResultWords] = r.len;
  reply[ReplyWord.Dirty] = dirty;
  reply[ReplyWord.Failed] = failed;
  reply[ReplyWord.JournalFloor] = journal === null ? 0 : journal.floor(engine.dirtyHead);
  reply[ReplyWord.FlushBehind] = engine.flushBehind ? 1 : 0;
  reply.set(r.buf.subarray(0, r.len), ReplyWord.HeaderSize);
  engine.resetOutput();
  return reply;
}
