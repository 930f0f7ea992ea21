/**
 * POST /v1/batch: up to 10,000 operations of any users in one request, the high-throughput path.
 * The body's bytes are read straight into the operation list by its own content-type parser
 * (batch-parser.ts), which also validates them: one bad op rejects the batch and changes nothing.
 * The ops are then split by shard; the answer is written as bytes in request order
 * (batch-answer.ts). In cluster mode they are first split by partition owner
 * (cluster/batch-split.ts).
 */
import type { FastifyInstance } from 'fastify';
import { ParsedBatch, parseBatch } from '../batch-parser.js';
import { ApiError } from '../errors.js';
import { BatchAnswerSink } from '../batch-answer.js';
import { batchSchema } from '../schemas.js';
import type { RouteContext } from './context.js';

/** The parser validated the body against batchSchema.body already (the schema stays for the OpenAPI document). */
const validatedByParser = () => () => true;

export function batchRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { router } = ctx;

  // An encapsulated context: this JSON parser applies to this route only.
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => {
      try {
        done(null, parseBatch(body as Buffer));
      } catch (err) {
        done(err as ApiError, undefined);
      }
    });

    scope.post<{ Body: ParsedBatch }>('/v1/batch', { schema: batchSchema, validatorCompiler: validatedByParser }, (req, reply) => {
      if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
      // Another content type fastify parses (text/plain): a string, not a batch.
      if (!(req.body instanceof ParsedBatch)) throw new ApiError('INVALID_BODY', 'body must be a JSON object (content-type application/json)');
      if (ctx.clusterRouting !== null) return ctx.clusterRouting.batch.submit(reply, req.body, req.headers);
      if (!router.submitAll(req.body.ops, new BatchAnswerSink(reply, req.body))) throw new ApiError('SHARD_OVERLOADED');
    });
  });
}
