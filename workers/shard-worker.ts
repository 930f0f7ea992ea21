/**
 * Shard worker entry point (piscina loads this file). One worker owns one shard for its whole
 * life: the pool that runs it has exactly one thread that is never reaped, so the slabs it
 * attaches to here are its own. Each task is one batch of encoded operations (plus any users the
 * main thread has loaded); the reply is one transferred buffer.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { move, workerData } from 'piscina';
import { join } from 'node:path';
import { ShardEngine } from './engine.js';
import { HybridClock, clockFileName } from './hybrid-clock.js';
import { ShardJournal } from './journal.js';
import { awaitRescue } from './crash-ledger.js';
import { shardDirName } from './journal-format.js';
import { OpWord, ReplyWord, TaskFlag, TaskWord, STATS_TASK, type ShardStats } from './protocol.js';
import { hasState, recoverShard } from './recovery.js';
import { Fence, type FenceBuffers } from './cluster-fence.js';
import { TelemetryRecorder } from './thread-telemetry.js';
import { H_CLOCK_BACK_STEPS, H_EXECUTING, H_EXECUTING_TICKET, H_DIRTY, H_MUTATING, H_RS_COUNT, H_USER_COUNT, attachShardMemory, type ShardBuffers } from './shard-memory.js';

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

/** Set once a batch failed: until this worker exits, no batch may touch the slabs again. */
let failed = false;

export default function runBatch(task: Uint32Array): unknown {
  if (task[TaskWord.OpCount] === STATS_TASK) return stats((task[TaskWord.LoadWords] & 1) !== 0, (task[TaskWord.LoadWords] & 2) !== 0);
  // Batches already queued behind the failed one would run on broken structures and, finishing,
  // clear H_MUTATING, so that the replacement would not rebuild them.
  if (failed) return move(buildReply(memory.header[H_DIRTY], 1));
  try {
    return applyBatch(task);
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
    return move(buildReply(memory.header[H_DIRTY], 1));
  }
}

function applyBatch(task: Uint32Array): unknown {
  const opCount = task[TaskWord.OpCount];
  const loadWords = task[TaskWord.LoadWords];
  const loadsAt = TaskWord.HeaderSize + opCount * OpWord.Size;
  // Loads first: they complete users whose operations arrived in earlier batches, which must be
  // applied before this batch's operations on the same users (those are parked behind them).
  const flags = task[TaskWord.Flags];
  engine.degraded = (flags & TaskFlag.StoreDegraded) !== 0;
  engine.pendingFull = (flags & TaskFlag.PendingFull) !== 0;
  clock.beginBatch();
  journal?.beginBatch(engine.dirtyTail, now());
  memory.header[H_MUTATING] = 1;
  if ((flags & TaskFlag.DiscardUsers) !== 0) engine.discardUsers(dropsUser);
  if (loadWords > 0) engine.installLoads(task, loadsAt, loadsAt + loadWords);
  if ((flags & TaskFlag.FaultExitInSecondOp) !== 0 && opCount >= 2) dieInSecondOp(task);
  engine.applyOps(task, TaskWord.HeaderSize, opCount);
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
  return durable === null ? move(reply) : durable.then(() => move(reply));
}

/** Fault injection: applies the first op, then dies as if inside the second one. */
function dieInSecondOp(task: Uint32Array): never {
  engine.applyOp(task, TaskWord.HeaderSize);
  memory.header[H_EXECUTING_TICKET] = task[TaskWord.HeaderSize + OpWord.Size + OpWord.Ticket];
  memory.header[H_EXECUTING] = 1;
  process.exit(70);
}

function buildReply(dirty: number, failed = 0): Uint32Array {
  const r = engine.results;
  const l = engine.loadRequests;
  const mu = engine.mutations;
  const reply = new Uint32Array(ReplyWord.HeaderSize + r.len + l.len + mu.len);
  reply[ReplyWord.ResultWords] = r.len;
  reply[ReplyWord.LoadWords] = l.len;
  reply[ReplyWord.MutationWords] = mu.len;
  reply[ReplyWord.Dirty] = dirty;
  reply[ReplyWord.Failed] = failed;
  reply[ReplyWord.JournalFloor] = journal === null ? 0 : journal.floor(engine.dirtyHead);
  reply[ReplyWord.FlushBehind] = engine.flushBehind ? 1 : 0;
  let at = ReplyWord.HeaderSize;
  reply.set(r.buf.subarray(0, r.len), at);
  at += r.len;
  reply.set(l.buf.subarray(0, l.len), at);
  at += l.len;
  reply.set(mu.buf.subarray(0, mu.len), at);
  engine.resetOutput();
  return reply;
}
