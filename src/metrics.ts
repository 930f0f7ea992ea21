/**
 * Prometheus metrics (prom-client, on the main thread's registry) and the JSON stats snapshot.
 * Both come from one source, `snapshot()`: shard workers, the store worker and the main thread
 * are asked for their figures when someone scrapes, so no operation ever sends a message or
 * touches a shared counter for the sake of metrics. The one per-request cost is the request
 * count and duration, kept in typed arrays (request-counts.ts) and turned into series at scrape time.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { ShardStats } from '../workers/protocol.js';
import { GC_KINDS, TelemetryRecorder, type ThreadTelemetry } from '../workers/thread-telemetry.js';
import type { JournalRetirer } from './journal-retirer.js';
import type { ShardRouter } from './shard-router.js';
import type { StoreLink } from './store/store-link.js';
import type { WriteBehindStats } from '../workers/write-behind.js';
import { BATCH_SIZE_BUCKETS, LOAD_SECONDS_BUCKETS } from '../workers/fixed-histogram.js';
import { SnapshotHistogram } from './snapshot-histogram.js';
import { RequestCounts } from './request-counts.js';

export interface Snapshot {
  main: { rss: number };
  store: WriteBehindStats & { name: string };
  shards: (ShardStats & { queueDepth: number; restarts: number })[];
  threads: ThreadTelemetry[];
  /** redo journal segments deleted since start (null without a journal) */
  journalSegmentsRetired: number | null;
}

const DURATION_BUCKETS = LOAD_SECONDS_BUCKETS;

export class Metrics {
  readonly registry = new Registry();
  private readonly main = new TelemetryRecorder('main');
  private readonly requests: Counter<'route' | 'status'>;
  private readonly duration: SnapshotHistogram<'route'>;
  private readonly requestCounts = new RequestCounts(DURATION_BUCKETS);
  private readonly rejected: Counter<'code'>;
  /** observed on the store thread, taken from its figures at each scrape */
  private readonly storeLoad: SnapshotHistogram;
  private readonly flushBatch: SnapshotHistogram;
  /** last cumulative value seen per counter series, to turn worker totals into increments */
  private readonly lastTotals = new Map<string, number>();

  constructor(
    private readonly router: ShardRouter,
    private readonly store: StoreLink,
    private readonly retirer: JournalRetirer | null = null,
  ) {
    const r = [this.registry];
    const retired = new Counter({ name: 'readstates_journal_segments_retired_total', help: 'Redo journal segments deleted once the store held their changes', registers: r });
    this.requests = new Counter({ name: 'readstates_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers: r });
    this.duration = new SnapshotHistogram({ name: 'readstates_http_request_duration_seconds', help: 'HTTP request duration by route', labelNames: ['route'], buckets: DURATION_BUCKETS, registers: r });
    this.rejected = new Counter({ name: 'readstates_rejected_total', help: 'Requests refused to protect the service (503/507), by error code', labelNames: ['code'], registers: r });
    this.storeLoad = new SnapshotHistogram({ name: 'readstates_store_load_duration_seconds', help: 'Time to load one user from the store (misses)', buckets: LOAD_SECONDS_BUCKETS, registers: r });
    this.flushBatch = new SnapshotHistogram({ name: 'readstates_store_flush_batch_size', help: 'Read states per store write call', buckets: BATCH_SIZE_BUCKETS, registers: r });

    const shardGauge = (name: string, help: string, pick: (s: Snapshot['shards'][number]) => number) =>
      ({ name, help, pick, gauge: new Gauge({ name, help, labelNames: ['shard'], registers: r }) }) as const;
    const shardCounter = (name: string, help: string, pick: (s: Snapshot['shards'][number]) => number) =>
      ({ name, help, pick, counter: new Counter({ name, help, labelNames: ['shard'], registers: r }) }) as const;
    const shardGauges = [
      shardGauge('readstates_shard_read_states', 'Read states cached', (s) => s.readStates),
      shardGauge('readstates_shard_users', 'Users cached', (s) => s.users),
      shardGauge('readstates_shard_capacity_read_states', 'Read states the shard can cache', (s) => s.capacity),
      shardGauge('readstates_shard_max_users', 'Users the shard can cache', (s) => s.maxUsers),
      shardGauge('readstates_shard_queue_depth', 'Operations queued or in flight', (s) => s.queueDepth),
      shardGauge('readstates_shard_dirty_read_states', 'Read states changed and not yet handed to the store', (s) => s.dirty),
      shardGauge('readstates_shard_oldest_unflushed_seconds', 'Age of the oldest change not yet handed to the store', (s) => s.oldestDirtyMs / 1000),
      shardGauge('readstates_shard_loading_users', 'Users being loaded from the store', (s) => s.loading),
    ];
    const shardCounters = [
      shardCounter('readstates_shard_hits_total', 'Operations on a cached user', (s) => s.hits),
      shardCounter('readstates_shard_misses_total', 'Operations on a user not cached (a load)', (s) => s.misses),
      shardCounter('readstates_shard_loads_total', 'Users loaded from the store', (s) => s.loads),
      shardCounter('readstates_shard_evictions_total', 'Users evicted to make room', (s) => s.evictions),
      shardCounter('readstates_shard_rejected_full_total', 'Operations refused for lack of room (507 or store backlog)', (s) => s.rejectedFull),
      shardCounter('readstates_shard_flushed_total', 'Read states handed to the store', (s) => s.flushed),
      shardCounter('readstates_shard_worker_restarts_total', 'Shard worker replacements (crash recovery)', (s) => s.restarts),
      shardCounter('readstates_journal_records_total', 'Changes appended to the redo journal', (s) => s.journal?.records ?? 0),
      shardCounter('readstates_journal_bytes_total', 'Bytes appended to the redo journal', (s) => s.journal?.bytes ?? 0),
      shardCounter('readstates_journal_fsyncs_total', 'fsync calls on the redo journal (--journal-fsync-ms)', (s) => s.journal?.fsyncs ?? 0),
      shardCounter('readstates_clock_steps_back_total', 'Times the wall clock was seen to step back (write timestamps kept increasing)', (s) => s.clockStepsBack),
    ];
    const storeGauges: [Gauge, (s: Snapshot['store']) => number][] = [
      [new Gauge({ name: 'readstates_store_pending_writes', help: 'Read states handed to the store and not yet confirmed', registers: r }), (s) => s.pending],
      [new Gauge({ name: 'readstates_store_pending_pool_entries', help: 'Entries the pending-write pool has room for (grows under a backlog, shrinks back once idle)', registers: r }), (s) => s.poolSize],
      [new Gauge({ name: 'readstates_store_up', help: '1 while the store accepts writes, 0 while failing', registers: r }), (s) => (s.storeFailing ? 0 : 1)],
    ];
    const storeCounters: [string, Counter, (s: Snapshot['store']) => number][] = [
      ['w', new Counter({ name: 'readstates_store_writes_total', help: 'Read states written to the store', registers: r }), (s) => s.written],
      ['f', new Counter({ name: 'readstates_store_write_failures_total', help: 'Store write calls that failed', registers: r }), (s) => s.failures],
      ['r', new Counter({ name: 'readstates_store_retries_total', help: 'Store write retries after a backoff', registers: r }), (s) => s.retries],
      ['l', new Counter({ name: 'readstates_store_load_failures_total', help: 'User loads that failed', registers: r }), (s) => s.loadFailures],
    ];
    const gcCount = new Counter({ name: 'readstates_gc_pauses_total', help: 'GC pauses by thread and kind (stop-the-world part)', labelNames: ['thread', 'kind'], registers: r });
    const gcSeconds = new Counter({ name: 'readstates_gc_pause_seconds_total', help: 'GC pause time by thread and kind', labelNames: ['thread', 'kind'], registers: r });
    const gcMax = new Gauge({ name: 'readstates_gc_pause_max_seconds', help: 'Longest GC pause by thread and kind since start', labelNames: ['thread', 'kind'], registers: r });
    const eldP99 = new Gauge({ name: 'readstates_event_loop_delay_p99_seconds', help: 'Event-loop delay p99 since the last scrape', labelNames: ['thread'], registers: r });
    const eldMax = new Gauge({ name: 'readstates_event_loop_delay_max_seconds', help: 'Event-loop delay max since the last scrape', labelNames: ['thread'], registers: r });
    const heap = new Gauge({ name: 'readstates_heap_used_bytes', help: 'V8 heap used by thread', labelNames: ['thread'], registers: r });
    const heapLive = new Gauge({ name: 'readstates_heap_live_bytes', help: 'V8 heap used right after the thread\'s last full GC', labelNames: ['thread'], registers: r });
    const cpu = new Counter({ name: 'readstates_thread_cpu_seconds_total', help: 'CPU time used by thread (user + system)', labelNames: ['thread'], registers: r });
    const runQueue = new Counter({ name: 'readstates_thread_run_queue_wait_seconds_total', help: 'Time a thread was runnable but waited for a CPU', labelNames: ['thread'], registers: r });
    const idleCount = new Counter({ name: 'readstates_idle_collections_total', help: 'Full collections (and malloc trims) a thread ran once idle', labelNames: ['thread'], registers: r });
    const idleMax = new Gauge({ name: 'readstates_idle_collection_max_seconds', help: 'Longest idle collection of a thread: what a request arriving during one waited at most', labelNames: ['thread'], registers: r });
    const rss = new Gauge({ name: 'readstates_process_resident_memory_bytes', help: 'Process resident memory', registers: r });

    const threadsGauge = new Gauge({ name: 'readstates_scrape_threads', help: 'Threads that reported figures in the last scrape', registers: r });
    // One refresh for everything: a scrape asks every thread once, then fills all series.
    this.fill = (snap: Snapshot) => {
      threadsGauge.set(snap.threads.length);
      if (snap.journalSegmentsRetired !== null) this.advance(retired, 'journal-retired', snap.journalSegmentsRetired);
      for (const s of snap.shards) {
        const shard = String(s.shard);
        for (const g of shardGauges) g.gauge.set({ shard }, g.pick(s));
        for (const c of shardCounters) this.advance(c.counter, `${c.name}/${shard}`, c.pick(s), { shard });
      }
      for (const [g, pick] of storeGauges) g.set(pick(snap.store));
      for (const [key, c, pick] of storeCounters) this.advance(c, key, pick(snap.store));
      for (const t of snap.threads) {
        for (const kind of GC_KINDS) {
          const labels = { thread: t.thread, kind };
          this.advance(gcCount, `gcc/${t.thread}/${kind}`, t.gc[kind].count, labels);
          this.advance(gcSeconds, `gcs/${t.thread}/${kind}`, t.gc[kind].seconds, labels);
          gcMax.set(labels, t.gc[kind].maxSeconds);
        }
        eldP99.set({ thread: t.thread }, t.eventLoopDelay.p99Seconds);
        eldMax.set({ thread: t.thread }, t.eventLoopDelay.maxSeconds);
        heap.set({ thread: t.thread }, t.heapUsed);
        this.advance(idleCount, `idle/${t.thread}`, t.idleCollections.count, { thread: t.thread });
        idleMax.set({ thread: t.thread }, t.idleCollections.maxSeconds);
        if (t.heapLiveAfterMajorGc !== null) heapLive.set({ thread: t.thread }, t.heapLiveAfterMajorGc);
        if (t.cpuSeconds !== null) this.advance(cpu, `cpu/${t.thread}`, t.cpuSeconds, { thread: t.thread });
        if (t.runQueueWaitSeconds !== null) this.advance(runQueue, `rq/${t.thread}`, t.runQueueWaitSeconds, { thread: t.thread });
      }
      rss.set(snap.main.rss);
      this.requestCounts.forEach((route, statuses, duration) => {
        for (const [status, n] of statuses) this.advance(this.requests, `req/${route}/${status}`, n, { route, status: String(status) });
        this.duration.set(duration, { route });
      });
    };
  }

  private readonly fill: (snap: Snapshot) => void;

  /** Prometheus text: gathers every thread's figures, then renders the registry. */
  async scrape(): Promise<string> {
    this.fill(await this.snapshot(true));
    return this.registry.metrics();
  }

  /** Increments a counter to a cumulative total reported by a thread (which may have restarted). */
  private advance(counter: Counter, key: string, total: number, labels?: Record<string, string>): void {
    const last = this.lastTotals.get(key) ?? 0;
    const delta = total >= last ? total - last : total;
    this.lastTotals.set(key, total);
    // inc(0) too: every series exists from the first scrape, so rate() works from the start.
    if (labels === undefined) counter.inc(delta);
    else counter.inc(labels, delta);
  }

  /** Called once per response (fastify onResponse). */
  observeRequest(route: string, status: number, seconds: number): void {
    this.requestCounts.observe(route, status, seconds);
  }

  countRejection(code: string): void {
    this.rejected.inc({ code });
  }

  /** Every thread's figures, gathered now. `resetDelay` starts new event-loop delay windows. */
  async snapshot(resetDelay = false): Promise<Snapshot> {
    const [shards, storeThread, host] = await Promise.all([
      this.router.stats(false, resetDelay),
      this.store.store.telemetry?.(resetDelay).catch(() => undefined),
      this.store.stats(),
    ]);
    const { loadHistogram, batchSizes, ...writeBehind } = host;
    this.storeLoad.set(loadHistogram);
    this.flushBatch.set(batchSizes);
    const threads = [this.main.read(resetDelay), ...shards.map((s) => s.telemetry)];
    if (storeThread !== undefined) threads.push(storeThread);
    return {
      main: { rss: process.memoryUsage().rss },
      store: { name: this.store.name, ...writeBehind },
      shards: shards.map((s, i) => ({ ...s, queueDepth: this.router.lanes[i].depth, restarts: this.router.lanes[i].restarts })),
      threads,
      journalSegmentsRetired: this.retirer === null ? null : this.retirer.retired,
    };
  }

  close(): void {
    this.main.close();
  }
}
