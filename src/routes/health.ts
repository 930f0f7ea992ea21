import type { FastifyInstance } from 'fastify';
import { healthSchema } from '../schemas.js';
import { sendError } from '../replies.js';
import type { RouteContext } from './context.js';

export const READY_TIMEOUT_MS = 1000;

export function healthRoutes(app: FastifyInstance, ctx: RouteContext): void {
  // The process is up and serving HTTP.
  app.get('/health', { schema: healthSchema }, async () => ({ status: 'ok' }));

  // Every shard worker answers an empty batch in time.
  app.get('/ready', { schema: healthSchema }, async (_req, reply) => {
    if (ctx.isClosing()) return sendError(reply, 'SHUTTING_DOWN');
    if (!(await ctx.router.ready(READY_TIMEOUT_MS))) return sendError(reply, 'NOT_READY');
    if (ctx.writeBehind.storeFailing) return sendError(reply, 'STORE_UNAVAILABLE');
    return { status: 'ready' };
  });
}

/** GET /v1/stats: per-shard figures and the main thread's memory, as JSON (operators, benches). */
export function statsRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/v1/stats', async () => {
    const shards = await ctx.router.stats(false);
    const mem = process.memoryUsage();
    return {
      main: { heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, rss: mem.rss },
      store: ctx.writeBehind.stats(),
      shards,
    };
  });
}
