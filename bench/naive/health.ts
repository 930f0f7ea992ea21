/** /health, /ready and /v1/stats for the naive service. */
import type { FastifyInstance } from 'fastify';
import { sendError } from '../../src/replies.js';
import { healthSchema } from '../../src/schemas.js';
import type { NaiveContext } from './context.js';

export function healthRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  // The process is up and serving HTTP.
  app.get('/health', { schema: healthSchema }, async () => ({ status: 'ok' }));

  // One process, no workers: ready unless stopping or the store is failing.
  app.get('/ready', { schema: healthSchema }, async (_req, reply) => {
    if (ctx.isClosing()) return sendError(reply, 'SHUTTING_DOWN');
    if (ctx.writeBehind.storeFailing) return sendError(reply, 'STORE_UNAVAILABLE');
    return { status: 'ready' };
  });
}

/** GET /v1/stats: the cache's figures and the process's memory. */
export function statsRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  app.get('/v1/stats', async () => {
    const mem = process.memoryUsage();
    const { cache, dirty } = ctx;
    return {
      main: { heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, rss: mem.rss },
      store: ctx.writeBehind.stats(),
      cache: {
        readStates: cache.readStates,
        users: cache.users,
        capacity: cache.capacity,
        dirty: dirty.size,
        oldestDirtyMs: dirty.oldestAgeMs(Date.now()),
        loading: cache.loadingUsers,
        queued: cache.queued,
        flushed: dirty.flushed,
        ...cache.counters,
      },
    };
  });
}
