/**
 * Builds the HTTP service: fastify with strict validation, the shard router, the store, and one
 * error path that turns every failure (ours, validation, framework) into {error, message}.
 */
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { installBearerAuth } from './auth.js';
import type { Config } from './config.js';
import { closeHttp, inFlightGraceMs } from './http-shutdown.js';
import { Metrics } from './metrics.js';
import { installErrorHandlers } from './http-errors.js';
import { observeRejections, sendError } from './replies.js';
import { batchRoutes } from './routes/batch.js';
import { channelRoutes } from './routes/channels.js';
import type { RouteContext } from './routes/context.js';
import { healthRoutes, statsRoutes } from './routes/health.js';
import { readStateRoutes } from './routes/read-states.js';
import { ShardRouter } from './shard-router.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ShardJournalConfig } from '../workers/shard-worker.js';
import { clockSkewMs, faultRoutes } from './fault-injection.js';
import { JournalRetirer } from './journal-retirer.js';
import { writeRescueSegment } from './journal-rescue.js';
import { StoredWord } from '../workers/protocol.js';
import { reapplyShard, replayJournal, type ReplayReport } from '../workers/journal-replay.js';
import { createStoreLink } from './store/open-store.js';
import { LocalStoreLink } from './store/local-store-link.js';
import type { StoreLink } from './store/store-link.js';
import type { ReadStateStore } from '../workers/store/store.js';
import { Coordinator } from './cluster/coordinator.js';
import { registerClusterMetrics } from './cluster/metrics.js';
import { clusterRoutes } from './routes/cluster.js';
import { Fence, allocateFence } from '../workers/cluster-fence.js';
import type { ClusterView } from './cluster/view.js';
import { Forwarder } from './cluster/forward.js';
import { installClusterRouting } from './cluster/http-routing.js';
import { trimBatchStaging } from './batch-parser.js';
import { collectGarbage, collections, trimFreedHeap } from '../workers/collect-garbage.js';
import { IDLE_CHECK_MS, IdleCollector } from '../workers/idle-collector.js';

export const BODY_LIMIT = 1024 * 1024;
/** a journal segment is closed at this size (or after --journal-segment-ms when not empty) */
const JOURNAL_SEGMENT_BYTES = 64 * 1024 * 1024;

export const SERVICE_VERSION = '0.1.0';

export interface Service {
  app: FastifyInstance;
  router: ShardRouter;
  /** the store itself, without the write-behind */
  store: ReadStateStore;
  /** the store thread: the write-behind's state and calls */
  writeBehind: StoreLink;
  /** cluster mode's coordinator (null for a single instance) */
  cluster: Coordinator | null;
  /** what start-up replayed from the redo journal (null without a durable store) */
  replay: ReplayReport | null;
  retirer: JournalRetirer | null;
  /**
   * Graceful stop: refuse new requests, give in-flight ones a bounded grace (http-shutdown.ts),
   * close every connection, hand every dirty read state to the store and wait for it (all within
   * shutdownTimeoutMs), then stop workers and store. Resolves with the number of read states left
   * unflushed (0 on a clean stop).
   */
  close(): Promise<number>;
}

export interface ServiceOptions {
  /** a store object in place of the configured one; its write-behind then runs on this thread (tests) */
  store?: ReadStateStore;
  logger?: boolean | { level: string };
  /** the cluster as the HTTP layer sees it, in place of the coordinator's view (tests) */
  clusterView?: ClusterView;
  /** how long a request sent on to its partition's owner may take (default 10 s) */
  forwardTimeoutMs?: number;
}

export async function buildService(config: Config, options: ServiceOptions = {}): Promise<Service> {
  // Cluster mode: store writes are fenced on this instance's leases (workers/cluster-fence.ts).
  const fenceBuffers = config.cluster === null ? null : allocateFence(config.cluster.partitions);
  const wbOptions = { maxPending: config.maxPendingWrites };
  const link: StoreLink = options.store === undefined ? createStoreLink(config, fenceBuffers ?? undefined, wbOptions) : new LocalStoreLink(options.store, config.shards, wbOptions);
  const store = link.store;
  await link.open();
  // A durable store gets a redo journal; whatever a previous run left in it goes to the store
  // first (also with --journal off: an earlier run may have had it on).
  const durableDir = config.store === 'memory' ? null : join(config.dataDir, 'journal');
  if (durableDir !== null) mkdirSync(durableDir, { recursive: true });
  // In cluster mode there is no journal to replay: records of partitions now owned elsewhere must
  // not be written (the fence would drop them anyway).
  const replay = durableDir === null || config.cluster !== null ? null : await replayJournal(durableDir, store);
  const journalDir = config.journal ? durableDir : null;
  const journal: ShardJournalConfig | null =
    journalDir === null
      ? null
      : { dir: journalDir, fsyncMs: config.journalFsyncMs, segmentBytes: JOURNAL_SEGMENT_BYTES, segmentMaxAgeMs: config.journalSegmentMs };

  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: BODY_LIMIT,
    // Requests do not log a line each; errors and lifecycle events do.
    logController: new LogController({ disableRequestLogging: true }),
    // fastify's own 503 while closing is not our error shape; the onRequest hook below answers instead.
    return503OnClosing: false,
    // Connections idle at close are closed at once; the rest get a grace period (http-shutdown.ts).
    forceCloseConnections: 'idle',
    connectionTimeout: 60_000,
    keepAliveTimeout: 72_000,
    requestTimeout: 30_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  // Slow clients: headers must arrive within 10 s (slowloris), the whole request within 30 s.
  app.server.headersTimeout = 10_000;
  let closing = false;
  link.onStateChange = (e) => {
    if (e.failing) app.log.error({ err: e.error, store: store.name }, 'store failing: keeping changes in memory and retrying');
    else app.log.info({ store: store.name }, 'store recovered');
  };
  const router = new ShardRouter({
    shards: config.shards,
    capacity: config.capacity,
    maxUsers: config.maxUsers,
    maxQueue: config.maxQueue,
    flushDelayMs: config.flushDelayMs,
    maxReadStatesPerUser: config.maxReadStatesPerUser,
    journal,
    clockDir: durableDir,
    clockFloorUs: replay?.maxTs ?? 0,
    clockSkewMs: clockSkewMs(),
    store: link,
    fence: fenceBuffers,
    onRestart:
      journalDir === null
        ? undefined
        : async (shard) => {
            const n = await reapplyShard(journalDir, shard, store, () => closing);
            app.log.info({ shard, records: n }, 'shard worker replaced: its journal was applied to the store again');
          },
    onRescue: (shard, records) => {
      // Durable first (the ops they belong to are answered as applied), then on to the store.
      if (journalDir !== null) writeRescueSegment(journalDir, shard, records, config.journalFsyncMs !== null);
      link.submit(records);
      app.log.warn({ shard, records: records.length / StoredWord.Size }, 'shard worker died mid-batch: the changes it had applied were kept');
    },
    onError: (err, shard) => app.log.error({ err, shard }, 'shard worker failed: its in-flight operations got 503; a replacement re-attaches to its slabs'),
    onClockStep: (shard, steps, largestMs) =>
      app.log.warn({ shard, steps, largestMs }, 'wall clock stepped back: write timestamps keep increasing from the last one handed out'),
    onPressure: (refused) =>
      app.log.warn({ refused, storeFailing: link.storeFailing, pendingWrites: link.pendingRecords }, 'evictions under pressure: operations refused for lack of room'),
  });
  // This thread's garbage goes as soon as no ops come (a fill's leftovers, before the next burst).
  const idleCollector = new IdleCollector(() => router.submitted, IDLE_CHECK_MS, () => {
    router.trimScratch();
    trimBatchStaging();
    collectGarbage();
  });
  // The trim waits for the whole process to be quiet: no ops, no write-back, and every thread's
  // collection (each counts as activity) done, so it gives back what all of them freed.
  const trimmer = new IdleCollector(
    () => router.submitted + router.backgroundActivity() + link.activity + collections.count,
    IDLE_CHECK_MS,
    trimFreedHeap,
  );
  const retirer =
    journalDir === null
      ? null
      : new JournalRetirer({ journalDir, lanes: router.lanes, store: link, onError: (err) => app.log.error({ err }, 'journal: deleting retired segments failed') });
  link.postedSeqs = () => router.storeSeqs();
  link.onRestart = () => {
    if (closing) return;
    // The records the dead thread held unconfirmed are in the shards' journals: apply them again
    // before the new thread serves the shards' loads. Without a journal they are gone.
    if (journalDir === null) app.log.error({ store: store.name }, 'store thread replaced: changes it had not yet written are lost (no journal)');
    for (let k = 0; k < router.shards; k++) void link.gate(k, true).catch(() => {});
    router.storeRestarted();
    if (journalDir === null) {
      for (let k = 0; k < router.shards; k++) void link.gate(k, false).catch(() => {});
      return;
    }
    for (const lane of router.lanes) {
      const done: Promise<void> = reapplyShard(journalDir, lane.shard, store, () => closing).then(
        (n) => app.log.warn({ shard: lane.shard, records: n }, 'store thread replaced: the shard\'s journal was applied to the store again'),
        (err: unknown) => app.log.error({ err, shard: lane.shard }, 'store thread replaced: applying the journal again failed'),
      ).finally(() => {
        if (lane.reapplying === done) lane.reapplying = null;
        void link.gate(lane.shard, false).catch(() => {});
      });
      lane.reapplying = done;
    }
  };
  const metrics = new Metrics(router, link, retirer);
  observeRejections((code) => metrics.countRejection(code));
  app.addHook('onResponse', (req, reply, done) => {
    metrics.observeRequest(req.routeOptions.url ?? 'unmatched', reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
  const cluster =
    config.cluster === null || fenceBuffers === null
      ? null
      : new Coordinator({ cluster: config.cluster, cassandra: config.cassandra, router, store: link, fence: new Fence(fenceBuffers), log: app.log });
  if (cluster !== null) registerClusterMetrics(metrics.registry, cluster);
  const ctx: RouteContext = { router, store: link, metrics, cluster, clusterRouting: null, isClosing: () => closing };

  installErrorHandlers(app);
  // Before anything else: a caller without the token learns nothing, not even that we are stopping.
  if (config.authToken !== undefined) installBearerAuth(app, config.authToken);
  // Requests that arrive on an open connection while stopping; routes check again for those whose
  // body was still arriving when the stop began.
  app.addHook('onRequest', (_req, reply, done) => {
    if (closing) return sendError(reply, 'SHUTTING_DOWN');
    done();
  });
  // Cluster mode: requests of partitions owned elsewhere go to their owner (before the routes: it hooks them).
  const view: ClusterView | null = options.clusterView ?? cluster;
  const forwarder = view === null ? null : new Forwarder(view.instanceId, { timeoutMs: options.forwardTimeoutMs });
  if (view !== null && forwarder !== null) ctx.clusterRouting = installClusterRouting(app, ctx, view, forwarder);

  // OpenAPI document generated from the route schemas, so the API docs cannot drift from the code.
  await app.register(swagger, {
    openapi: {
      info: { title: 'read-states', version: SERVICE_VERSION, description: 'Read states of a chat product: which channels and messages each user has read.' },
    },
  });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  healthRoutes(app, ctx);
  statsRoutes(app, ctx);
  readStateRoutes(app, ctx);
  channelRoutes(app, ctx);
  batchRoutes(app, ctx);
  clusterRoutes(app, ctx);
  faultRoutes(app, router);

  // Wait for every worker to start and attach to its slabs before answering anything.
  if (!(await router.ready(30_000))) throw new Error('shard workers did not start');
  // Joins, and takes the partitions it should own, before the port opens.
  await cluster?.start();

  return {
    app,
    router,
    store,
    writeBehind: link,
    cluster,
    replay,
    retirer,
    async close() {
      closing = true;
      const deadline = Date.now() + config.shutdownTimeoutMs;
      // Hand every partition over first (flushed and confirmed), so the next owners lose nothing.
      if (cluster !== null && !(await cluster.leave(Math.max(0, deadline - Date.now())))) {
        app.log.error('cluster: not every partition was handed over in time; the others take them once the lease runs out');
      }
      const http = await closeHttp(app, inFlightGraceMs(config.shutdownTimeoutMs), deadline);
      if (http.forced > 0) app.log.warn({ connections: http.forced }, `closed ${http.forced} connections whose requests had not ended in time`);
      if (!http.closed) app.log.error('the HTTP server did not close before the shutdown deadline');
      await forwarder?.close();
      const flushed = await Promise.race([
        router.flushAll().then(() => true),
        new Promise<boolean>((r) => setTimeout(r, Math.max(0, deadline - Date.now()), false).unref()),
      ]);
      const drained = flushed && (await link.drain(Math.max(0, deadline - Date.now())));
      const unflushed = drained ? 0 : router.dirty + link.pendingRecords;
      metrics.close();
      idleCollector.close();
      trimmer.close();
      retirer?.close();
      await cluster?.close();
      await router.close();
      // Every change is in the store: nothing for the next start to replay. Otherwise the journal
      // stays, and the next start applies it.
      if (drained) await retirer?.retireAll();
      // Closed on every path, so the store thread's timers and retries stop; what it still held
      // is in the journal. A store that hangs on close must not hold the stop past its deadline.
      await Promise.race([
        link.close().catch((err: unknown) => app.log.error({ err }, 'closing the store failed')),
        new Promise<void>((r) => setTimeout(r, Math.max(1000, deadline - Date.now())).unref()),
      ]);
      return unflushed;
    },
  };
}
