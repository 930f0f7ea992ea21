/** GET /v1/cluster: partitions, owners and epochs, so that a client can send each user's requests to its owner. */
import type { FastifyInstance } from 'fastify';
import { clusterSchema } from '../schemas.js';
import type { RouteContext } from './context.js';

export function clusterRoutes(app: FastifyInstance, ctx: RouteContext): void {
  app.get('/v1/cluster', { schema: clusterSchema }, async () => (ctx.cluster === null ? { cluster: null } : ctx.cluster.describe()));
}
