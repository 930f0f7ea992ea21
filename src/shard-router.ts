/**
 * Routes every operation to the shard that owns its user (hash of both id halves, mod shards) and
 * sends each shard's operations of one event-loop turn as a single batch: the handlers of all
 * requests parsed in this turn enqueue, then one setImmediate flushes every lane that has work.
 */
import { fileURLToPath } from 'node:url';
import { shardOf } from '../workers/hash.js';
import { OpWord, type ShardStats } from '../workers/protocol.js';
import type { OpList } from '../workers/op-list.js';
import { H_CLOCK_BACK_MAX_MS, H_CLOCK_BACK_STEPS, H_STORE_SEQ, allocateShardBuffers, type ShardBuffers } from '../workers/shard-memory.js';
import { ShardLane, type OpSink } from './shard-lane.js';
import type { ShardJournalConfig } from '../workers/shard-worker.js';
import type { StoreLink } from './store/store-link.js';
import type { FenceBuffers } from '../workers/cluster-fence.js';

export interface RouterOptions {
  shards: number;
  capacity: number;
  maxUsers: number;
  maxQueue: number;
  flushDelayMs: number;
  maxReadStatesPerUser: number;
  /** the redo journal; null without a durable store */
  journal: ShardJournalConfig | null;
  /** where each shard keeps its clock reservation; null without a durable store */
  clockDir: string | null;
  /** no write timestamp at or below this (µs) */
  clockFloorUs: number;
  /** added to the shards' wall clock (fault injection) */
  clockSkewMs: number;
  store: StoreLink;
  /** cluster mode: the store fence (its drop marks are read by TaskFlag.DiscardUsers) */
  fence?: FenceBuffers | null;
  onRestart?: (shard: number) => Promise<void>;
  /** see LaneOptions.onRescue; by default the records only go to the store (no journal) */
  onRescue?: (shard: number, records: Uint32Array) => void;
  /** Called when a shard saw its wall clock step back (timestamps went on increasing regardless). */
  onClockStep?: (shard: number, steps: number, largestMs: number) => void;
  /** Called at most every 10 s with the shards that refused operations for lack of room. */
  onPressure?: (refusedByShard: Record<number, number>) => void;
  onError: (err: unknown, shard: number) => void;
}

/**
 * The compiled worker entry point. When this module runs from TypeScript sources (tests import
 * src/ directly) the worker still has to be JavaScript, so it comes from the build output.
 */
export function workerFile(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../dist/workers/shard-worker.js' : '../workers/shard-worker.js';
  return fileURLToPath(new URL(rel, here));
}

/** Operations queued for one shard in a turn beyond which they are sent at once (see submit). */
const EAGER_SEND_OPS = 1024;

export class ShardRouter {
  readonly lanes: ShardLane[] = [];
  /** operations submitted since start (the HTTP thread's idle check reads it) */
  submitted = 0;
  readonly buffers: ShardBuffers[] = [];
  private scheduled = false;
  /** submitAll's count of operations per shard */
  private readonly perShard: Uint32Array;
  /**
   * One coarse timer for the whole process drives write-behind: each tick asks every shard with
   * dirty read states for those whose delay has passed (a timer per read state would cost far more
   * than the resolution is worth).
   */
  private readonly ticker: NodeJS.Timeout;
  private readonly sendTurnBound: () => void;
  private readonly scheduleBound: () => void;

  constructor(o: RouterOptions) {
    const perShardCapacity = Math.ceil(o.capacity / o.shards);
    const perShardUsers = Math.ceil(o.maxUsers / o.shards);
    this.perShard = new Uint32Array(o.shards);
    this.sendTurnBound = this.sendTurn.bind(this);
    this.scheduleBound = this.schedule.bind(this);
    const file = workerFile();
    // At most ~512 ticks per flush delay: each tick with new changes takes one of the shard's
    // 1,024 write-behind marks, and a full set makes the newest changes come due later.
    const tickMs = Math.min(Math.max(1000, Math.ceil(o.flushDelayMs / 512)), Math.max(20, Math.floor(o.flushDelayMs / 4)));
    let lastPressureLog = 0;
    const clockSteps = new Int32Array(o.shards);
    const headers: Int32Array[] = [];
    this.ticker = setInterval(() => {
      for (const lane of this.lanes) lane.tick();
      for (let k = 0; k < headers.length; k++) {
        const h = headers[k];
        const steps = h[H_CLOCK_BACK_STEPS];
        if (steps !== clockSteps[k]) {
          clockSteps[k] = steps;
          o.onClockStep?.(k, steps, h[H_CLOCK_BACK_MAX_MS]);
        }
      }
      const now = Date.now();
      if (o.onPressure !== undefined && now - lastPressureLog >= 10_000) {
        const refused: Record<number, number> = {};
        let any = false;
        for (const lane of this.lanes) {
          if (lane.refusedForRoom > 0) {
            refused[lane.shard] = lane.refusedForRoom;
            lane.refusedForRoom = 0;
            any = true;
          }
        }
        if (any) {
          lastPressureLog = now;
          o.onPressure(refused);
        }
      }
    }, tickMs);
    this.ticker.unref();
    for (let shard = 0; shard < o.shards; shard++) {
      const buffers = allocateShardBuffers(perShardCapacity, perShardUsers, o.maxQueue);
      this.buffers.push(buffers);
      headers.push(new Int32Array(buffers.header));
      this.lanes.push(
        new ShardLane({
          shard,
          buffers,
          workerFile: file,
          maxQueue: o.maxQueue,
          flushDelayMs: o.flushDelayMs,
          maxReadStatesPerUser: o.maxReadStatesPerUser,
          journal: o.journal,
          clockDir: o.clockDir,
          clockFloorUs: o.clockFloorUs,
          clockSkewMs: o.clockSkewMs,
          store: o.store,
          fence: o.fence ?? null,
          onRestart: o.onRestart,
          onRescue: o.onRescue ?? ((_shard, records) => o.store.submit(records)),
          schedule: this.scheduleBound,
          onError: o.onError,
        }),
      );
    }
  }

  get shards(): number {
    return this.lanes.length;
  }

  /**
   * Queues operation `i` of `ops` for its user's shard; its result goes to `sink` under `index`.
   * Returns false when that shard's queue is full (the caller answers 503).
   */
  submit(ops: OpList, i: number, sink: OpSink, index: number): boolean {
    const src = ops.words;
    const from = i * OpWord.Size;
    const lane = this.lanes[shardOf(src[from + OpWord.UserLo], src[from + OpWord.UserHi], this.lanes.length)];
    const at = lane.reserve(sink, index);
    if (at < 0) return false;
    this.submitted++;
    const w = lane.opWords;
    // Every word but the ticket, which reserve() wrote.
    for (let j = 0; j < OpWord.Size; j++) if (j !== OpWord.Ticket) w[at + j] = src[from + j];
    // A turn that parses many big batches sends the first ones on while it parses the rest, so
    // the shard applies them meanwhile instead of waiting for the end of the turn.
    if (lane.queuedOps >= EAGER_SEND_OPS) lane.flush();
    return true;
  }

  /**
   * Queues every operation of `ops` (result `index` = its position), or none of them when a shard
   * lacks room for its share (returns false: the caller answers 503 and nothing was applied).
   */
  submitAll(ops: OpList, sink: OpSink): boolean {
    const perShard = this.perShard;
    perShard.fill(0);
    const w = ops.words;
    for (let i = 0; i < ops.length; i++) perShard[shardOf(w[i * OpWord.Size + OpWord.UserLo], w[i * OpWord.Size + OpWord.UserHi], this.lanes.length)]++;
    for (let k = 0; k < this.lanes.length; k++) if (this.lanes[k].freeSlots < perShard[k]) return false;
    for (let i = 0; i < ops.length; i++) this.submit(ops, i, sink, i);
    return true;
  }

  shardFor(userLo: number, userHi: number): number {
    return shardOf(userLo, userHi, this.lanes.length);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.sendTurnBound);
  }

  private sendTurn(): void {
    this.scheduled = false;
    for (let i = 0; i < this.lanes.length; i++) this.lanes[i].flush();
  }

  /** Moves while any shard works on its own (write-back, loads, idle collections). */
  backgroundActivity(): number {
    let n = 0;
    for (let i = 0; i < this.lanes.length; i++) n += this.lanes[i].backgroundActivity;
    return n;
  }

  /** Gives back scratch a burst grew, once the HTTP thread is idle. */
  trimScratch(): void {
    for (let i = 0; i < this.lanes.length; i++) this.lanes[i].trimScratch();
  }

  /** True when every shard worker answers within the timeout. */
  async ready(timeoutMs: number): Promise<boolean> {
    const answers = await Promise.all(this.lanes.map((l) => l.ping(timeoutMs)));
    return answers.every(Boolean);
  }

  stats(collect = false, resetDelay = false): Promise<ShardStats[]> {
    return Promise.all(this.lanes.map((l) => l.stats(collect, resetDelay)));
  }

  /** Times any shard saw the wall clock step back. */
  get clockStepsBack(): number {
    let n = 0;
    for (const b of this.buffers) n += new Int32Array(b.header)[H_CLOCK_BACK_STEPS];
    return n;
  }

  /** Read states dirty in the shards as of their last replies. */
  get dirty(): number {
    let n = 0;
    for (const lane of this.lanes) n += lane.dirty;
    return n;
  }

  /** Each shard's message number to the store host (shard-memory.ts H_STORE_SEQ). */
  storeSeqs(): number[] {
    return this.buffers.map((b) => new Int32Array(b.header)[H_STORE_SEQ]);
  }

  /** The store thread was replaced: every shard re-attaches and asks again for its loads. */
  storeRestarted(): void {
    for (const lane of this.lanes) lane.storeRestarted();
  }

  /** Hands every dirty read state of every shard to the store. */
  async flushAll(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.flushAll()));
  }

  /** Cluster mode: every shard drops the cached users of the partitions the fence marks. */
  async discardUsers(): Promise<void> {
    await Promise.all(this.lanes.map((l) => l.discardUsers()));
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    for (const lane of this.lanes) lane.failAll();
    await Promise.all(this.lanes.map((l) => l.close()));
  }
}
