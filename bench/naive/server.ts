/**
 * The naive service: the same HTTP API as src/server.ts in one process, no worker threads, read
 * states as JS objects in an lru-cache of users, and the same write-behind to the same stores.
 */
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Config } from '../../src/config.js';
import { createStore } from '../../src/store/open-store.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { WriteBehind } from '../../workers/write-behind.js';
import { batchRoutes } from './batch.js';
import { UserCache } from './cache.js';
import { channelRoutes } from './channels.js';
import type { NaiveContext } from './context.js';
import { DirtyTracker } from './dirty.js';
import { healthRoutes, statsRoutes } from './health.js';
import { installErrorHandlers } from '../../src/http-errors.js';
import { readStateRoutes } from './routes.js';

/** As src/server.ts's BODY_LIMIT (not imported: that module pulls in the shard machinery). */
export const BODY_LIMIT = 1024 * 1024;

export interface NaiveService {
  app: FastifyInstance;
  cache: UserCache;
  store: ReadStateStore;
  writeBehind: WriteBehind;
  /** Read states changed but not confirmed by the store (dirty in the cache or pending). */
  unflushed(): number;
  /**
   * Graceful stop: refuse new requests, finish in-flight ones, hand every dirty read state to the
   * store and wait for it (up to shutdownTimeoutMs), then close the store. Resolves with the
   * number of read states left unflushed (0 on a clean stop).
   */
  close(): Promise<number>;
}

export interface NaiveServiceOptions {
  store?: ReadStateStore;
  logger?: boolean | { level: string };
}

export async function buildNaiveService(config: Config, options: NaiveServiceOptions = {}): Promise<NaiveService> {
  const store = options.store ?? createStore(config);
  await store.open();
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: BODY_LIMIT,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    connectionTimeout: 60_000,
    keepAliveTimeout: 72_000,
    requestTimeout: 30_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  let closing = false;
  const writeBehind = new WriteBehind(store, {
    maxPending: config.maxPendingWrites,
    onStateChange: (degraded, err) => {
      if (degraded) app.log.error({ err, store: store.name }, 'store failing: keeping changes in memory and retrying');
      else app.log.info({ store: store.name }, 'store recovered');
    },
  });
  const dirty = new DirtyTracker(writeBehind, config.flushDelayMs);
  const cache = new UserCache({ capacity: config.capacity, maxUsers: config.maxUsers, maxQueue: config.maxQueue }, writeBehind, dirty);
  // Same coarse tick as the shard router.
  const tickMs = Math.min(1000, Math.max(20, Math.floor(config.flushDelayMs / 4)));
  const ticker = setInterval(() => dirty.flushDue(Date.now()), tickMs);
  ticker.unref();

  const ctx: NaiveContext = { cache, dirty, writeBehind, isClosing: () => closing };
  installErrorHandlers(app);
  healthRoutes(app, ctx);
  statsRoutes(app, ctx);
  readStateRoutes(app, ctx);
  channelRoutes(app, ctx);
  batchRoutes(app, ctx);

  return {
    app,
    cache,
    store,
    writeBehind,
    unflushed: () => dirty.size + writeBehind.pendingRecords,
    async close() {
      closing = true;
      const deadline = Date.now() + config.shutdownTimeoutMs;
      clearInterval(ticker);
      await app.close();
      dirty.flushAll();
      const drained = await writeBehind.drain(Math.max(0, deadline - Date.now()));
      const unflushed = drained ? 0 : dirty.size + writeBehind.pendingRecords;
      writeBehind.close();
      if (drained) await store.close();
      return unflushed;
    },
  };
}
