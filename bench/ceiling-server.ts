/**
 * The "ceiling" of every HTTP benchmark (bench/http.ts and the harness): bare fastify on one
 * thread with the service's routes, where each route lets fastify parse the same JSON body
 * (default parser, no schema, no shard) and answers a constant, pre-serialised body of the same
 * shape and about the same size as the service's answer. Whatever the service does on top of this
 * (validation, id parsing, the shard round trip, serialisation) is what separates it from this.
 *
 *   node dist/bench/ceiling-server.js --port 3100 [--batch-ops 100] [--connect-read-states 82]
 */
import Fastify from 'fastify';
import { intFlag, parseFlags, strFlag } from './common.js';

const flags = parseFlags(process.argv.slice(2));
const port = intFlag(flags, 'port', 3100);
const host = strFlag(flags, 'host', '127.0.0.1');
const batchOps = intFlag(flags, 'batch-ops', 100);
// The mean channel count of the benchmark's users (10 + 290 u^3: 82.5).
const connectReadStates = intFlag(flags, 'connect-read-states', 82);

const readState = {
  user_id: '80351110224678912',
  channel_id: '41771983423143937',
  last_message_id: '1101010101010101010',
  mention_count: 3,
  last_pin_timestamp: 0,
  flags: 0,
  version: 17,
};
const ONE = JSON.stringify(readState);
const BATCH = JSON.stringify({ results: Array.from({ length: batchOps }, () => ({ status: 200, read_state: readState })) });
const ALL = JSON.stringify({ user_id: readState.user_id, read_states: Array.from({ length: connectReadStates }, () => readState) });

const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
let bodies = 0;
type Reply = { header(k: string, v: string): unknown; send(b?: string): unknown; code(c: number): Reply };
const answer = (body: string) => (req: { body?: unknown }, reply: Reply) => {
  if (req.body !== undefined) bodies++;
  reply.header('content-type', 'application/json; charset=utf-8');
  return reply.send(body);
};
app.post('/v1/users/:user_id/read-states/:channel_id/mentions', answer(ONE));
app.post('/v1/users/:user_id/read-states/:channel_id/ack', answer(ONE));
app.get('/v1/users/:user_id/read-states/:channel_id', answer(ONE));
app.get('/v1/users/:user_id/read-states', answer(ALL));
app.delete('/v1/users/:user_id/read-states/:channel_id', (_req, reply) => reply.code(204).send());
app.post('/v1/batch', answer(BATCH));
app.get('/ready', async () => ({ status: 'ready' }));
app.get('/v1/stats', async () => ({ bodies, main: process.memoryUsage() }));

await app.listen({ host, port });
process.on('SIGTERM', () => {
  app.close().then(() => process.exit(0));
});
