/**
 * Fault injection for tests that drive the service from outside, off unless its environment
 * variable is set (nothing is registered or read per request otherwise):
 * - READ_STATES_FAULT_CLOCK_SKEW_MS=N shifts the shards' wall clock by N ms (a clock that is off,
 *   or, across restarts, one that stepped back);
 * - READ_STATES_FAULT_INJECTION=1 adds `POST /v1/_faults/shards/{shard}/kill`, which terminates
 *   that shard's worker thread as a crash would.
 */
import type { FastifyInstance } from 'fastify';
import type { ShardRouter } from './shard-router.js';

export const CLOCK_SKEW_ENV = 'READ_STATES_FAULT_CLOCK_SKEW_MS';
export const FAULT_ROUTES_ENV = 'READ_STATES_FAULT_INJECTION';

export function clockSkewMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[CLOCK_SKEW_ENV];
  if (raw === undefined) return 0;
  const ms = Number(raw);
  if (!Number.isSafeInteger(ms)) throw new Error(`${CLOCK_SKEW_ENV} must be an integer (ms), got "${raw}"`);
  return ms;
}

export function faultRoutes(app: FastifyInstance, router: ShardRouter, env: NodeJS.ProcessEnv = process.env): void {
  if (env[FAULT_ROUTES_ENV] !== '1') return;
  app.post<{ Params: { shard: string } }>(
    '/v1/_faults/shards/:shard/kill',
    { schema: { hide: true, params: { type: 'object', properties: { shard: { type: 'string', pattern: '^[0-9]{1,3}$' } }, required: ['shard'] } } },
    async (req, reply) => {
      const shard = Number(req.params.shard);
      if (shard >= router.shards) return reply.code(404).send({ error: 'NOT_FOUND', message: `no shard ${shard}` });
      await router.lanes[shard].killWorker();
      return reply.code(202).send({ killed: shard });
    },
  );
}
