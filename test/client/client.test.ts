/**
 * ReadStatesClient against the real service over real HTTP: every method, coalescing of one
 * turn's calls into one POST /v1/batch (counted from /metrics), a batch across both shards,
 * errors mapped to their classes, auth, and the package's export map.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClientClosedError,
  InvalidRequestError,
  NotFoundError,
  ReadStatesClient,
  ReadStatesError,
  UnauthorizedError,
  type ReadState,
} from '../../client/index.js';
import { shardOf } from '../../workers/hash.js';
import { requestsOn } from '../support/metrics-text.js';
import { startService, type RunningService } from '../support/service.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ONE = '/v1/users/:user_id/read-states/:channel_id';

let s: RunningService;
let client: ReadStatesClient;

/** A read state's version: the timestamp (µs) of its last change, a positive integer below 2^53. */
function expectVersion(v: unknown): void {
  expect(Number.isSafeInteger(v) && (v as number) > 0, `version ${String(v)}`).toBe(true);
}

/** Users (small ids) owned by each of 2 shards. */
function usersOfShard(shard: number, n: number, from = 1): string[] {
  const out: string[] = [];
  for (let u = from; out.length < n; u++) if (shardOf(u, 0, 2) === shard) out.push(String(u));
  return out;
}

beforeAll(async () => {
  s = await startService({ shards: 2 });
  client = new ReadStatesClient({ url: s.url });
});

afterAll(async () => {
  await client?.close();
  await s?.close();
});

describe('each method, one round trip', () => {
  it('ack, mention, patch, get, delete', async () => {
    const c = new ReadStatesClient({ url: s.url, coalesce: false });
    try {
      const m = await c.mention('1001', '7', { messageId: '500', count: 3 });
      expect(m).toEqual({ user_id: '1001', channel_id: '7', last_message_id: '0', mention_count: 3, last_pin_timestamp: 0, flags: 0, version: m.version });
      expectVersion(m.version);
      // every change moves the version up (a timestamp, not a counter)
      const a = await c.ack(1001n, '7', { messageId: '600' });
      expect(a).toMatchObject({ last_message_id: '600', mention_count: 0 });
      expect(a.version).toBeGreaterThan(m.version);
      const manual = await c.ack('1001', '7', { messageId: '550', mentionCount: 2, manual: true });
      expect(manual).toMatchObject({ last_message_id: '550', mention_count: 2 });
      expect(manual.version).toBeGreaterThan(a.version);
      const p = await c.patch('1001', '7', { lastPinTimestamp: 1_700_000_000_000, flags: 5 });
      expect(p).toMatchObject({ last_pin_timestamp: 1_700_000_000_000, flags: 5 });
      expect(p.version).toBeGreaterThan(manual.version);
      expect(await c.getReadState('1001', '7')).toEqual(p);
      // what changes nothing leaves the version as it was
      expect(await c.ack('1001', '7', { messageId: '549' })).toEqual(p);
      expect(await c.mention('1001', '7', { messageId: '550' })).toEqual(p);
      expect(await c.getReadState('1001', '7')).toEqual(p);
      await expect(c.deleteReadState('1001', '7')).resolves.toBeUndefined();
      const gone = await c.getReadState('1001', '7').catch((e: unknown) => e);
      expect(gone).toBeInstanceOf(NotFoundError);
      expect(gone).toMatchObject({ code: 'NOT_FOUND', status: 404, attempts: 1 });
      await expect(c.deleteReadState('1001', '7')).rejects.toMatchObject({ code: 'NOT_FOUND', status: 404 });
    } finally {
      await c.close();
    }
  });

  it('getReadStates lists one user in channel order; an unknown user has none', async () => {
    await client.ack('1002', '30', { messageId: '1' });
    await client.ack('1002', '4', { messageId: '2' });
    const all = await client.getReadStates('1002');
    expect(all.user_id).toBe('1002');
    expect(all.read_states.map((r) => r.channel_id)).toEqual(['4', '30']);
    expect(await client.getReadStates('99999')).toMatchObject({ user_id: '99999', read_states: [] });
  });

  it('ackBulk answers in request order', async () => {
    const r = await client.ackBulk('1003', [
      { channelId: '9', messageId: '90' },
      { channelId: '8', messageId: '80' },
    ]);
    expect(r.read_states.map((x) => [x.channel_id, x.last_message_id])).toEqual([
      ['9', '90'],
      ['8', '80'],
    ]);
  });

  it('fanOutMention counts the read states it changed (duplicates once)', async () => {
    const r = await client.fanOutMention('77', ['1004', '1005', '1004'], { messageId: '10', count: 2 });
    expect(r).toEqual({ updated: 2 });
    expect(await client.getReadState('1005', '77')).toMatchObject({ mention_count: 2 });
  });

  it('batch passes ops and per-op results through raw', async () => {
    const r = await client.batch([
      { op: 'mention', user_id: '1006', channel_id: '1' },
      { op: 'get', user_id: '1006', channel_id: '1' },
      { op: 'get', user_id: '1006', channel_id: '2' },
      { op: 'delete', user_id: '1006', channel_id: '1' },
    ]);
    expect(r.results.map((x) => x.status)).toEqual([200, 200, 404, 204]);
    expect(r.results[1].read_state).toMatchObject({ mention_count: 1 });
    expect(r.results[2]).toMatchObject({ error: 'NOT_FOUND' });
  });

  it('health and ready', async () => {
    expect(await client.health()).toEqual({ status: 'ok' });
    expect(await client.ready()).toEqual({ status: 'ready' });
  });
});

describe('errors', () => {
  it('bad input fails its own call before anything is sent (a rejection, not a throw)', async () => {
    const before = await requestsOn(s.url, '/v1/batch');
    let p: Promise<ReadState> | undefined;
    expect(() => {
      p = client.getReadState('01', '1');
    }).not.toThrow();
    await expect(p).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(client.getReadState('0', '1')).rejects.toMatchObject({ code: 'INVALID_ID' });
    await expect(client.getReadState('18446744073709551616', '1')).rejects.toMatchObject({ code: 'INVALID_ID' });
    await expect(client.mention('1', '2', { count: 0 })).rejects.toMatchObject({ code: 'INVALID_BODY' });
    await expect(client.patch('1', '2', {})).rejects.toMatchObject({ code: 'EMPTY_PATCH' });
    await expect(client.ack('1', '2', { messageId: '18446744073709551615', mentionCount: -1 })).rejects.toMatchObject({ code: 'INVALID_BODY' });
    // the largest id is fine
    await expect(client.ack('18446744073709551615', '18446744073709551615', { messageId: '18446744073709551615' })).resolves.toMatchObject({
      user_id: '18446744073709551615',
    });
    expect(await requestsOn(s.url, '/v1/batch')).toBe(before);
  });

  it("the server's 400 is an InvalidRequestError with its code, not retried", async () => {
    const before = await requestsOn(s.url, '/v1/batch', 400);
    const err = await client.batch([{ op: 'get', user_id: '1', channel_id: '1', flags: 3 } as never]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err).toMatchObject({ code: 'INVALID_BODY', status: 400, applied: undefined, attempts: 1 });
    expect(await requestsOn(s.url, '/v1/batch', 400)).toBe(before + 1);
  });

  it('a 404 inside a coalesced batch is the same NotFoundError a single call throws', async () => {
    const single = new ReadStatesClient({ url: s.url, coalesce: false });
    try {
      const alone = await single.getReadState('1007', '1').catch((e: unknown) => e);
      const [inBatch] = await Promise.allSettled([client.getReadState('1007', '1'), client.mention('1007', '2')]);
      expect(inBatch.status).toBe('rejected');
      const e = (inBatch as PromiseRejectedResult).reason as ReadStatesError;
      expect(e).toBeInstanceOf(NotFoundError);
      expect(alone).toBeInstanceOf(NotFoundError);
      expect({ code: e.code, status: e.status, applied: e.applied }).toEqual({
        code: (alone as ReadStatesError).code,
        status: (alone as ReadStatesError).status,
        applied: (alone as ReadStatesError).applied,
      });
    } finally {
      await single.close();
    }
  });
});

describe('coalescing', () => {
  it('calls of one turn go as one POST /v1/batch; each caller gets its own result', async () => {
    const batches = await requestsOn(s.url, '/v1/batch');
    const singles = await requestsOn(s.url, ONE + '/mentions');
    const users = Array.from({ length: 50 }, (_, i) => String(2000 + i));
    const results = await Promise.all(users.map((u, i) => client.mention(u, '5', { count: (i % 7) + 1 })));
    results.forEach((r, i) => {
      expect(r).toMatchObject({ user_id: users[i], channel_id: '5', mention_count: (i % 7) + 1 });
      expectVersion(r.version);
    });
    expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 1);
    expect(await requestsOn(s.url, ONE + '/mentions')).toBe(singles);
  });

  it('mixed kinds and outcomes in one batch: every caller gets the answer of its own op', async () => {
    await client.ack('2100', '1', { messageId: '10' });
    const batches = await requestsOn(s.url, '/v1/batch');
    const [get, ack, mention, patch, del, missing, delMissing] = await Promise.allSettled([
      client.getReadState('2100', '1'),
      client.ack('2101', '1', { messageId: '5' }),
      client.mention('2102', '1', { messageId: '3' }),
      client.patch('2103', '1', { flags: 9 }),
      client.deleteReadState('2100', '1'),
      client.getReadState('2104', '1'),
      client.deleteReadState('2105', '1'),
    ]);
    expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 1);
    expect(get).toMatchObject({ status: 'fulfilled', value: { user_id: '2100', last_message_id: '10' } });
    expect(ack).toMatchObject({ status: 'fulfilled', value: { user_id: '2101', last_message_id: '5' } });
    expect(mention).toMatchObject({ status: 'fulfilled', value: { user_id: '2102', mention_count: 1 } });
    expect(patch).toMatchObject({ status: 'fulfilled', value: { user_id: '2103', flags: 9 } });
    expect(del).toEqual({ status: 'fulfilled', value: undefined });
    expect(missing.status).toBe('rejected');
    expect((missing as PromiseRejectedResult).reason).toBeInstanceOf(NotFoundError);
    expect((delMissing as PromiseRejectedResult).reason).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('ops of one user in one batch apply in call order', async () => {
    const ops = [
      client.mention('2200', '1'),
      client.mention('2200', '1'),
      client.ack('2200', '1', { messageId: '100' }),
      client.mention('2200', '1', { messageId: '101' }),
    ];
    const r = await Promise.all(ops);
    expect(r.map((x) => x.mention_count)).toEqual([1, 2, 0, 1]);
    // each op changed the read state: strictly increasing versions, in call order
    expectVersion(r[0].version);
    for (let i = 1; i < r.length; i++) expect(r[i].version).toBeGreaterThan(r[i - 1].version);
    expect(await client.getReadState('2200', '1')).toEqual(r[3]);
  });

  it('a batch that straddles both shards', async () => {
    const a = usersOfShard(0, 20, 3000);
    const b = usersOfShard(1, 20, 3000);
    const users = a.flatMap((u, i) => [u, b[i]]);
    expect(new Set(users.map((u) => shardOf(Number(u), 0, 2)))).toEqual(new Set([0, 1]));
    const batches = await requestsOn(s.url, '/v1/batch');
    const results = await Promise.all(users.map((u, i) => client.ack(u, '42', { messageId: String(1000 + i) })));
    expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 1);
    results.forEach((r, i) => expect(r).toMatchObject({ user_id: users[i], channel_id: '42', last_message_id: String(1000 + i) }));
    // and read back, again one batch
    const back = await Promise.all(users.map((u) => client.getReadState(u, '42')));
    expect(back).toEqual(results);
    expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 2);
  });

  it('maxBatchOps splits a turn into several batches', async () => {
    const c = new ReadStatesClient({ url: s.url, maxBatchOps: 10 });
    try {
      const batches = await requestsOn(s.url, '/v1/batch');
      const r = await Promise.all(Array.from({ length: 25 }, (_, i) => c.mention(String(4000 + i), '1')));
      expect(r.every((x) => x.mention_count === 1)).toBe(true);
      expect(await requestsOn(s.url, '/v1/batch')).toBe(batches + 3);
    } finally {
      await c.close();
    }
  });

  it('a turn with one op uses its own route; coalesce: false sends each op on its own', async () => {
    const c = new ReadStatesClient({ url: s.url, coalesce: false });
    try {
      const batches = await requestsOn(s.url, '/v1/batch');
      const singles = await requestsOn(s.url, ONE + '/mentions');
      await client.mention('4100', '1');
      await Promise.all([c.mention('4101', '1'), c.mention('4102', '1'), c.mention('4103', '1')]);
      expect(await requestsOn(s.url, '/v1/batch')).toBe(batches);
      expect(await requestsOn(s.url, ONE + '/mentions')).toBe(singles + 4);
    } finally {
      await c.close();
    }
  });
});

describe('auth and lifecycle', () => {
  it('authToken is sent as a bearer token; without it calls fail with UnauthorizedError', async () => {
    const secured = await startService({ shards: 1, authToken: 's3cret-token' });
    const anon = new ReadStatesClient({ url: secured.url });
    const wrong = new ReadStatesClient({ url: secured.url, authToken: 'other' });
    const good = new ReadStatesClient({ url: secured.url, authToken: 's3cret-token' });
    try {
      await expect(anon.getReadStates('1')).rejects.toBeInstanceOf(UnauthorizedError);
      const both = await Promise.allSettled([wrong.mention('1', '1'), wrong.mention('2', '1')]);
      for (const r of both) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAUTHORIZED', status: 401, attempts: 1 });
      expect(await anon.health()).toEqual({ status: 'ok' });
      expect(await Promise.all([good.mention('1', '1'), good.mention('2', '1')])).toMatchObject([{ mention_count: 1 }, { mention_count: 1 }]);
    } finally {
      await Promise.all([anon.close(), wrong.close(), good.close()]);
      await secured.close();
    }
  });

  it('close() sends what is queued, waits for it, then refuses new calls', async () => {
    const c = new ReadStatesClient({ url: s.url });
    const queued = [c.mention('4200', '1'), c.mention('4201', '1')];
    await c.close();
    expect(await Promise.all(queued)).toMatchObject([{ mention_count: 1 }, { mention_count: 1 }]);
    await expect(c.getReadState('4200', '1')).rejects.toBeInstanceOf(ClientClosedError);
    await expect(c.getReadStates('4200')).rejects.toMatchObject({ code: 'CLIENT_CLOSED', applied: false });
  });
});

describe('the package', () => {
  it("imports nothing from the service's sources", () => {
    const dir = new URL('../../client/', import.meta.url);
    for (const f of readdirSync(dir)) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
        expect(m[1], `${f} imports ${m[1]}`).toMatch(/^(\.\/[a-z-]+\.js|undici|node:[a-z]+)$/);
      }
    }
  });

  it('is importable as read-states/client once built', () => {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', "const m = await import('read-states/client'); console.log(typeof m.ReadStatesClient, m.SERVER_ERROR_CODES.length > 0)"], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('function true');
  });
});
