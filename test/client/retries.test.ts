/**
 * Retries, timeouts and aborts. Against the real service: a 503 SHARD_RESTARTED (applied: false,
 * Retry-After) provoked with a worker killed under a parked op, a 503 SHARD_OVERLOADED from a full
 * queue, the attempt bound, a stopped service. Against a scripted stub: the exact rules
 * (applied: null, 4xx and 507 never retried, Retry-After honoured and capped, per-op retries in a
 * batch, splitting a batch that one bad op rejects, a reset connection, hangs, aborts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  AbortError,
  ConnectionError,
  InvalidRequestError,
  NotFoundError,
  ReadStatesClient,
  TimeoutError,
  UnavailableError,
  type ReadStatesError,
} from '../../client/index.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { shardOf } from '../../workers/hash.js';
import { FaultyStore } from '../support/faulty-store.js';
import { metricSum, requestsOn } from '../support/metrics-text.js';
import { startService, type RunningService } from '../support/service.js';
import { json, startStub, stubReadState, type Stub } from '../support/stub-server.js';
import { until } from '../support/until.js';

const ONE = '/v1/users/:user_id/read-states/:channel_id';

let s: RunningService | undefined;
let stub: Stub | undefined;
const clients: ReadStatesClient[] = [];

function clientOf(url: string, options: Partial<ConstructorParameters<typeof ReadStatesClient>[0]> = {}): ReadStatesClient {
  const c = new ReadStatesClient({ url, retry: { baseDelayMs: 5, maxDelayMs: 50, maxRetryAfterMs: 100, maxAttempts: 5 }, ...options });
  clients.push(c);
  return c;
}

function rejected(p: Promise<unknown>): Promise<ReadStatesError> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as ReadStatesError,
  );
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await s?.close();
  s = undefined;
  await stub?.close();
  stub = undefined;
});

describe('against the real service', () => {
  it('503 SHARD_RESTARTED (applied: false, Retry-After) is retried and succeeds, applied once', async () => {
    const store = new FaultyStore(new MemoryStore());
    s = await startService({ shards: 1, capacity: 1000, maxUsers: 100 }, store);
    const lane = s.service.router.lanes[0];
    const c = clientOf(s.url, { retry: { baseDelayMs: 5, maxRetryAfterMs: 200, maxAttempts: 3 } });
    store.holdingLoads = true;
    const started = Date.now();
    const p = c.mention('7', '1', { count: 2 });
    await until('the mention parked behind its load', () => store.loadCalls > 0 && lane.inFlight === 0);
    await lane.killWorker();
    store.releaseLoads();
    const r = await p;
    expect(r).toMatchObject({ user_id: '7', channel_id: '1', mention_count: 2 });
    expect(Number.isSafeInteger(r.version) && r.version > 0).toBe(true);
    // the refusal came for real, with Retry-After, and the retry waited for it (capped at 200 ms)
    expect(await metricSum(s.url, 'readstates_rejected_total', { code: 'SHARD_RESTARTED' })).toBe(1);
    expect(await requestsOn(s.url, ONE + '/mentions', 503)).toBe(1);
    expect(await requestsOn(s.url, ONE + '/mentions', 200)).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    // applied once: the read state is the one the retry answered, same version
    expect(await c.getReadState('7', '1')).toEqual(r);
  });

  it('in a batch across both shards only the op that was not applied is retried', async () => {
    const store = new FaultyStore(new MemoryStore());
    s = await startService({ shards: 2, capacity: 1000, maxUsers: 100 }, store);
    let a = 1;
    while (shardOf(a, 0, 2) !== 0) a++;
    let b = 1;
    while (shardOf(b, 0, 2) !== 1) b++;
    const c = clientOf(s.url);
    await c.mention(String(b), '1'); // b is loaded before loads are held
    store.holdingLoads = true;
    const loads = store.loadCalls;
    const batches = await requestsOn(s.url, '/v1/batch');
    const pa = c.mention(String(a), '1');
    const pb = c.mention(String(b), '2');
    await until('the op of shard 0 parked behind its load', () => store.loadCalls > loads && s!.service.router.lanes[0].inFlight === 0);
    await s.service.router.lanes[0].killWorker();
    store.releaseLoads();
    const [ra, rb] = await Promise.all([pa, pb]);
    expect(ra).toMatchObject({ user_id: String(a), mention_count: 1 });
    expect(rb).toMatchObject({ user_id: String(b), channel_id: '2', mention_count: 1 });
    expect(Number.isSafeInteger(rb.version) && rb.version > 0).toBe(true);
    expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 1);
    // the retry of a's mention alone, on its own route; b's was not sent again
    expect(await requestsOn(s.url, ONE + '/mentions', 200)).toBe(2);
    // not applied again: unchanged since the batch answered it
    expect(await c.getReadState(String(b), '2')).toEqual(rb);
  });

  it('503 SHARD_OVERLOADED from a full queue is retried until there is room', async () => {
    const store = new FaultyStore(new MemoryStore());
    s = await startService({ shards: 1, maxQueue: 1, capacity: 1000, maxUsers: 100 }, store);
    const c = clientOf(s.url, { coalesce: false, retry: { baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 20, maxAttempts: 1000 }, timeoutMs: 20_000 });
    store.holdingLoads = true;
    // the only ticket of the shard, held by an op parked behind its load
    const parked = fetch(s.url + '/v1/users/7/read-states/1/mentions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    await until('the parked op', () => store.loadCalls > 0);
    const p = c.ack('8', '1', { messageId: '5' });
    await until('a refusal', async () => (await metricSum(s!.url, 'readstates_rejected_total', { code: 'SHARD_OVERLOADED' })) >= 2);
    store.releaseLoads();
    expect(await p).toMatchObject({ user_id: '8', last_message_id: '5' });
    expect((await parked).status).toBe(200);
  });

  it('the attempt bound: a refusal that persists fails after maxAttempts requests', async () => {
    s = await startService({ shards: 1, maxQueue: 2 });
    const c = clientOf(s.url, { retry: { baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 20, maxAttempts: 3 } });
    const ops = ['1', '2', '3'].map((u) => ({ op: 'mention' as const, user_id: u, channel_id: '1' }));
    const err = await rejected(c.batch(ops));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err).toMatchObject({ code: 'SHARD_OVERLOADED', status: 503, applied: false, attempts: 3, retryAfterMs: 1000 });
    expect(await requestsOn(s.url, '/v1/batch', 503)).toBe(3);
  });

  it('a stopped service: ConnectionError (applied: false), bounded retries, no hang', async () => {
    const run = await startService({ shards: 1 });
    const url = run.url;
    const c = clientOf(url, { timeoutMs: 30_000, retry: { baseDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 } });
    await c.mention('1', '1'); // a keep-alive connection exists
    await run.close();
    const started = Date.now();
    const [one, many] = await Promise.all([rejected(c.mention('1', '1')), rejected(c.getReadStates('1'))]);
    for (const e of [one, many]) {
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e).toMatchObject({ code: 'CONNECTION_ERROR', applied: false, attempts: 3 });
    }
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('the retry rules, against a stub', () => {
  it('applied: null is never retried', async () => {
    stub = await startStub((_r, res) => json(res, 503, { error: 'SHARD_UNAVAILABLE', message: 'x', applied: null }, { 'retry-after': '1' }));
    const c = clientOf(stub.url);
    const e = await rejected(c.mention('1', '1'));
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e).toMatchObject({ code: 'SHARD_UNAVAILABLE', status: 503, applied: null, retryAfterMs: 1000, attempts: 1 });
    expect(stub.requests).toHaveLength(1);
  });

  it('a 503 without applied (not an operation refusal), a 4xx and a 507 are never retried', async () => {
    stub = await startStub((r, res) => {
      if (r.path.startsWith('/v1/users/1/')) json(res, 503, { error: 'NOT_READY', message: 'x' });
      else if (r.path.startsWith('/v1/users/2/')) json(res, 400, { error: 'INVALID_BODY', message: 'bad' });
      else json(res, 507, { error: 'USER_READ_STATE_LIMIT', message: 'full', applied: false });
    });
    const c = clientOf(stub.url, { coalesce: false });
    const [a, b, d] = await Promise.all([rejected(c.mention('1', '1')), rejected(c.mention('2', '1')), rejected(c.mention('3', '1'))]);
    expect(a).toMatchObject({ code: 'NOT_READY', applied: undefined });
    expect(b).toBeInstanceOf(InvalidRequestError);
    expect(b).toMatchObject({ code: 'INVALID_BODY', status: 400 });
    expect(d).toBeInstanceOf(UnavailableError);
    expect(d).toMatchObject({ code: 'USER_READ_STATE_LIMIT', status: 507, applied: false, attempts: 1 });
    expect(stub.requests).toHaveLength(3);
  });

  it('Retry-After is waited for, up to maxRetryAfterMs', async () => {
    let n = 0;
    stub = await startStub((r, res) => {
      if (n++ < 2) json(res, 503, { error: 'SHARD_OVERLOADED', message: 'x', applied: false }, { 'retry-after': n === 1 ? '1' : '3600' });
      else json(res, 200, stubReadState('1', '1', { mention_count: 1 }));
    });
    const c = clientOf(stub.url, { timeoutMs: 10_000, retry: { baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 300, maxAttempts: 5 } });
    expect(await c.mention('1', '1')).toMatchObject({ mention_count: 1 });
    const [first, second, third] = stub.requests;
    expect(stub.requests).toHaveLength(3);
    // 1 s asked, 300 ms waited (the cap); an hour asked, 300 ms waited
    expect(second.at - first.at).toBeGreaterThanOrEqual(290);
    expect(third.at - second.at).toBeGreaterThanOrEqual(290);
    expect(third.at - first.at).toBeLessThan(5_000);
  });

  it('a retry that would pass the deadline is not made: the call fails with the refusal', async () => {
    stub = await startStub((_r, res) => json(res, 503, { error: 'STORE_BACKLOG', message: 'x', applied: false }, { 'retry-after': '1' }));
    const c = clientOf(stub.url, { timeoutMs: 500, retry: { maxRetryAfterMs: 2000, maxAttempts: 10 } });
    const e = await rejected(c.ack('1', '1', { messageId: '1' }));
    expect(e).toMatchObject({ code: 'STORE_BACKLOG', applied: false, attempts: 1 });
    expect(stub.requests).toHaveLength(1);
  });

  it('in a coalesced batch each op gets its own answer; only the not-applied one is retried', async () => {
    stub = await startStub((r, res) => {
      if (r.path === '/v1/batch') {
        json(res, 200, {
          results: [
            { status: 200, read_state: stubReadState('1', '1') },
            { status: 503, error: 'SHARD_RESTARTED', applied: false },
            { status: 503, error: 'SHARD_UNAVAILABLE', applied: null },
            { status: 404, error: 'NOT_FOUND' },
            { status: 507, error: 'USER_TOO_LARGE', applied: false },
            { status: 204 },
          ],
        });
      } else json(res, 200, stubReadState('2', '1', { mention_count: 1 }));
    });
    const c = clientOf(stub.url);
    const r = await Promise.allSettled([
      c.getReadState('1', '1'),
      c.mention('2', '1'),
      c.mention('3', '1'),
      c.getReadState('4', '1'),
      c.mention('5', '1'),
      c.deleteReadState('6', '1'),
    ]);
    expect(r[0]).toMatchObject({ status: 'fulfilled', value: { user_id: '1' } });
    expect(r[1]).toMatchObject({ status: 'fulfilled', value: { user_id: '2', mention_count: 1 } });
    expect((r[2] as PromiseRejectedResult).reason).toBeInstanceOf(UnavailableError);
    expect((r[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'SHARD_UNAVAILABLE', applied: null, attempts: 1 });
    expect((r[3] as PromiseRejectedResult).reason).toBeInstanceOf(NotFoundError);
    expect((r[4] as PromiseRejectedResult).reason).toMatchObject({ code: 'USER_TOO_LARGE', status: 507, applied: false });
    expect(r[5]).toEqual({ status: 'fulfilled', value: undefined });
    expect(stub.requests.map((x) => `${x.method} ${x.path}`)).toEqual(['POST /v1/batch', 'POST /v1/users/2/read-states/1/mentions']);
  });

  it('a batch refused whole with applied: false is retried whole (ops coalesced again)', async () => {
    let n = 0;
    stub = await startStub((r, res) => {
      if (n++ === 0) return json(res, 503, { error: 'SHUTTING_DOWN', message: 'x', applied: false }, { 'retry-after': '1' });
      if (r.path === '/v1/batch') {
        const ops = (r.body as { ops: { user_id: string }[] }).ops;
        return json(res, 200, { results: ops.map((o) => ({ status: 200, read_state: stubReadState(o.user_id, '1') })) });
      }
      const user = r.path.split('/')[3];
      json(res, 200, stubReadState(user, '1'));
    });
    const c = clientOf(stub.url);
    const r = await Promise.all([c.getReadState('1', '1'), c.getReadState('2', '1')]);
    expect(r.map((x) => x.user_id)).toEqual(['1', '2']);
    expect(stub.requests.length).toBeGreaterThanOrEqual(2);
    expect(stub.requests[0].path).toBe('/v1/batch');
  });

  it('a batch one bad op rejects is split so that the others still get their answers', async () => {
    const bad = (o: { channel_id: string }): boolean => o.channel_id === '13';
    stub = await startStub((r, res) => {
      if (r.path === '/v1/batch') {
        const ops = (r.body as { ops: { user_id: string; channel_id: string }[] }).ops;
        if (ops.some(bad)) return json(res, 400, { error: 'INVALID_BODY', message: 'ops[i]: no' });
        return json(res, 200, { results: ops.map((o) => ({ status: 200, read_state: stubReadState(o.user_id, o.channel_id) })) });
      }
      const [, , , user, , channel] = r.path.split('/');
      if (channel === '13') return json(res, 400, { error: 'INVALID_BODY', message: 'no' });
      json(res, 200, stubReadState(user, channel));
    });
    const c = clientOf(stub.url);
    const channels = ['1', '2', '3', '13', '5', '6', '7', '8'];
    const r = await Promise.allSettled(channels.map((ch, i) => c.getReadState(String(i + 1), ch)));
    r.forEach((x, i) => {
      if (channels[i] === '13') {
        expect((x as PromiseRejectedResult).reason).toBeInstanceOf(InvalidRequestError);
        expect((x as PromiseRejectedResult).reason).toMatchObject({ attempts: 1 });
      } else expect(x).toMatchObject({ status: 'fulfilled', value: { channel_id: channels[i] } });
    });
    expect(stub.requests.length).toBeLessThanOrEqual(1 + 2 + 2 + 2);
  });

  it('a connection reset after the request left is not retried (applied: null)', async () => {
    stub = await startStub((_r, res) => res.socket?.destroy());
    const c = clientOf(stub.url);
    const e = await rejected(c.mention('1', '1'));
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e).toMatchObject({ code: 'CONNECTION_ERROR', applied: null, attempts: 1 });
    expect(stub.requests).toHaveLength(1);
  });

  it('authToken goes out as Authorization: Bearer', async () => {
    stub = await startStub((_r, res) => json(res, 200, { status: 'ok' }));
    const c = clientOf(stub.url, { authToken: 'abc.DEF-123' });
    await c.health();
    expect(stub.requests[0].headers.authorization).toBe('Bearer abc.DEF-123');
  });
});

describe('timeouts and aborts', () => {
  it('timeoutMs: a call without an answer fails with TimeoutError (applied: null), coalesced or not', async () => {
    stub = await startStub(() => {
      // never answers
    });
    const c = clientOf(stub.url, { timeoutMs: 300 });
    const started = Date.now();
    const [one, batchA, batchB, direct] = await Promise.all([
      rejected(c.mention('1', '1', {}, { timeoutMs: 200 })),
      rejected(new Promise<unknown>((resolve, reject) => setImmediate(() => Promise.all([c.mention('2', '1'), c.mention('3', '1')]).then(resolve, reject)))),
      rejected(c.getReadState('9', '9', { timeoutMs: 250 })),
      rejected(c.getReadStates('1')),
    ]);
    for (const e of [one, batchA, batchB, direct]) {
      expect(e).toBeInstanceOf(TimeoutError);
      expect(e).toMatchObject({ code: 'TIMEOUT', applied: null });
    }
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('AbortSignal: before the flush nothing is sent (applied: false); on the wire applied: null; the others of the batch go on', async () => {
    stub = await startStub((r, res) => {
      if (r.path === '/v1/batch') {
        const ops = (r.body as { ops: { user_id: string }[] }).ops;
        setTimeout(() => json(res, 200, { results: ops.map((o) => ({ status: 200, read_state: stubReadState(o.user_id, '1') })) }), 300);
      }
    });
    const c = clientOf(stub.url);
    const early = new AbortController();
    const p0 = c.mention('1', '1', {}, { signal: early.signal });
    early.abort();
    const e0 = await rejected(p0);
    expect(e0).toBeInstanceOf(AbortError);
    expect(e0).toMatchObject({ code: 'ABORTED', applied: false, attempts: 0 });
    await new Promise((r) => setTimeout(r, 50));
    expect(stub.requests).toHaveLength(0);

    const late = new AbortController();
    const pa = c.mention('2', '1', {}, { signal: late.signal });
    const pb = c.mention('3', '1');
    await until('the batch on the wire', () => stub!.requests.length === 1);
    late.abort();
    const ea = await rejected(pa);
    expect(ea).toBeInstanceOf(AbortError);
    expect(ea).toMatchObject({ applied: null, attempts: 1 });
    expect(await pb).toMatchObject({ user_id: '3' });

    const aborted = new AbortController();
    aborted.abort();
    await expect(c.getReadStates('1', { signal: aborted.signal })).rejects.toMatchObject({ code: 'ABORTED', applied: false, attempts: 0 });
  });
});
