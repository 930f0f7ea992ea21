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
    if (ctx.store.storeFailing) return sendError(reply, 'STORE_UNAVAILABLE');
    if (ctx.cluster !== null && !ctx.cluster.ready()) return sendError(reply, 'NOT_READY', 'not a cluster member with a valid lease');
    return { status: 'ready' };
  });
}

/**
 * GET /v1/stats: the same figures as /metrics, as JSON (benchmarks read per-thread GC and
 * event-loop delay here). GET /metrics: Prometheus text format.
 */
export function statsRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/v1/stats', async () => ctx.metrics.snapshot(false));
  app.get('/metrics', async (_req, reply) => {
    const text = await ctx.metrics.scrape();
    reply.header('content-type', ctx.metrics.registry.contentType);
    return text;
  });
}
