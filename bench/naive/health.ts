/** /health, /ready and /v1/stats for the naive service. */
import type { FastifyInstance } from 'fastify';
import { sendError } from '../../src/replies.js';
import { healthSchema } from '../../src/schemas.js';
import { TelemetryRecorder } from '../../workers/thread-telemetry.js';
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

/**
 * GET /v1/stats: the cache's figures, the process's memory, and `threads` (one thread, `main`) in
 * the same shape as the real service's (GC pauses by kind, event-loop delay, heap). The naive
 * service has no /metrics scrape to start a new event-loop delay window, so each /v1/stats read
 * starts one: its delay figures cover the time since the previous read.
 */
export function statsRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  const telemetry = new TelemetryRecorder('main');
  app.addHook('onClose', async () => telemetry.close());
  app.get('/v1/stats', async () => {
    const mem = process.memoryUsage();
    const { cache, dirty } = ctx;
    return {
      main: { heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, rss: mem.rss },
      threads: [telemetry.read(true)],
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
