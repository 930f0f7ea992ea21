/**
 * Delta sync, paging and the unread summary (issue 15), over real HTTP against the service:
 * user versions, `since` deltas with deleted channel ids, `full` answers below the tombstone
 * horizon, pages ordered by unsigned channel id whose concatenation is the full list, and
 * summaries (single route and batch op) against what the list says.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import type { ReadStateJson } from '../../src/replies.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { startService, type RunningService } from '../support/service.js';

type RS = ReadStateJson;

interface ListBody {
  user_id: string;
  version: number;
  full: boolean;
  read_states: RS[];
  deleted_channel_ids?: string[];
  next_after?: string;
}

interface SummaryBody {
  user_id: string;
  version: number;
  read_states: number;
  mention_total: number;
  channels_with_mentions: number;
}

let s: RunningService;
/** a small cache: one shard, four user slots, so the tombstone ring holds four deletes */
let small: RunningService;

beforeAll(async () => {
  s = await startService({ capacity: 100_000, maxUsers: 10_000 });
  small = await startService({ shards: 1, capacity: 1000, maxUsers: 4 });
});
afterAll(async () => {
  await s?.close();
  await small?.close();
});

async function list(url: string, user: string, query = ''): Promise<ListBody> {
  const r = await call(url, 'GET', `/v1/users/${user}/read-states${query}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as ListBody;
}

async function summary(url: string, user: string): Promise<SummaryBody> {
  const r = await call(url, 'GET', `/v1/users/${user}/summary`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as SummaryBody;
}

const ids = (states: RS[]): string[] => states.map((r) => r.channel_id);

function u64Less(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

describe('user version and deltas', () => {
  it('an unknown user: version 0, full, nothing; since 0 is an empty delta, since above 0 a 400', async () => {
    expect(await list(s.url, '9000')).toEqual({ user_id: '9000', version: 0, full: true, read_states: [] });
    expect(await list(s.url, '9000', '?since=0')).toEqual({ user_id: '9000', version: 0, full: false, read_states: [], deleted_channel_ids: [] });
    const r = await call(s.url, 'GET', '/v1/users/9000/read-states?since=5');
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'SINCE_AHEAD' });
  });

  it('reports exactly what changed after since: ack, mention, patch, delete, re-create', async () => {
    const u = '9001';
    const p = (c: string): string => `/v1/users/${u}/read-states/${c}`;
    expect((await call(s.url, 'POST', p('1') + '/ack', { message_id: '10' })).status).toBe(200);
    expect((await call(s.url, 'POST', p('2') + '/mentions', { count: 2 })).status).toBe(200);
    expect((await call(s.url, 'PATCH', p('3'), { flags: 1 })).status).toBe(200);
    const v0 = await list(s.url, u);
    expect(v0.full).toBe(true);
    expect(ids(v0.read_states)).toEqual(['1', '2', '3']);
    // the user's version is their latest change
    expect(v0.version).toBe(Math.max(...v0.read_states.map((r) => r.version)));

    expect(await list(s.url, u, `?since=${v0.version}`)).toEqual({ user_id: u, version: v0.version, full: false, read_states: [], deleted_channel_ids: [] });

    // an op that changes nothing moves nothing
    expect((await call(s.url, 'POST', p('1') + '/ack', { message_id: '5' })).body).toMatchObject({ last_message_id: '10' });
    expect((await list(s.url, u)).version).toBe(v0.version);

    const acked = (await call(s.url, 'POST', p('1') + '/ack', { message_id: '11' })).body as RS;
    expect(acked.version).toBeGreaterThan(v0.version);
    const d1 = await list(s.url, u, `?since=${v0.version}`);
    expect(d1).toEqual({ user_id: u, version: acked.version, full: false, read_states: [acked], deleted_channel_ids: [] });

    await call(s.url, 'POST', p('2') + '/mentions', {});
    await call(s.url, 'PATCH', p('3'), { last_pin_timestamp: 5 });
    const d2 = await list(s.url, u, `?since=${d1.version}`);
    expect(ids(d2.read_states)).toEqual(['2', '3']);
    expect(d2.read_states[0]).toMatchObject({ mention_count: 3 });
    expect(d2.version).toBeGreaterThan(d1.version);

    expect((await call(s.url, 'DELETE', p('2'))).status).toBe(204);
    const d3 = await list(s.url, u, `?since=${d2.version}`);
    expect(d3.version).toBeGreaterThan(d2.version);
    expect(d3).toMatchObject({ full: false, read_states: [], deleted_channel_ids: ['2'] });
    // from further back: the changes and the delete
    const d3b = await list(s.url, u, `?since=${v0.version}`);
    expect(ids(d3b.read_states)).toEqual(['1', '3']);
    expect(d3b.deleted_channel_ids).toEqual(['2']);
    // a delete of something absent is a 404 and no change
    expect((await call(s.url, 'DELETE', p('2'))).status).toBe(404);
    expect((await list(s.url, u)).version).toBe(d3.version);

    // re-created: a changed read state, no longer a deleted id
    const again = (await call(s.url, 'POST', p('2') + '/mentions', {})).body as RS;
    expect(again).toMatchObject({ mention_count: 1 });
    const d4 = await list(s.url, u, `?since=${d2.version}`);
    expect(d4).toEqual({ user_id: u, version: again.version, full: false, read_states: [again], deleted_channel_ids: [] });

    // deleted again: reported once
    await call(s.url, 'DELETE', p('2'));
    const d5 = await list(s.url, u, `?since=${d2.version}`);
    expect(d5.deleted_channel_ids).toEqual(['2']);
    expect(d5.read_states).toEqual([]);

    const r = await call(s.url, 'GET', `/v1/users/${u}/read-states?since=${d5.version + 1}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'SINCE_AHEAD' });
  });

  it('a fan-out mention and batch ops move the version too', async () => {
    const u = '9002';
    await call(s.url, 'POST', `/v1/users/${u}/read-states/1/ack`, { message_id: '1' });
    const v0 = (await summary(s.url, u)).version;
    expect((await call(s.url, 'POST', '/v1/channels/7/mentions', { message_id: '5', user_ids: [u] })).body).toEqual({ updated: 1 });
    const d = await list(s.url, u, `?since=${v0}`);
    expect(ids(d.read_states)).toEqual(['7']);
    const b = await call(s.url, 'POST', '/v1/batch', { ops: [{ op: 'delete', user_id: u, channel_id: '1' }, { op: 'summary', user_id: u }] });
    const results = (b.body as { results: { status: number; summary?: SummaryBody }[] }).results;
    expect(results[0].status).toBe(204);
    expect(results[1].summary!.version).toBeGreaterThan(d.version);
    expect((await list(s.url, u, `?since=${d.version}`)).deleted_channel_ids).toEqual(['1']);
  });

  it('the version never goes down and goes up with every change (random ops)', async () => {
    const u = '9003';
    let last = 0;
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 150; i++) {
      const c = String(1 + next(6));
      const kind = next(4);
      const path = `/v1/users/${u}/read-states/${c}`;
      const r =
        kind === 0
          ? await call(s.url, 'POST', path + '/ack', { message_id: String(next(50)) })
          : kind === 1
            ? await call(s.url, 'POST', path + '/mentions', { message_id: String(1 + next(50)) })
            : kind === 2
              ? await call(s.url, 'PATCH', path, { flags: next(3) })
              : await call(s.url, 'DELETE', path);
      const v = (await summary(s.url, u)).version;
      const changed = r.status === 204 || (r.status === 200 && (r.body as RS).version > last);
      if (changed) expect(v, `op ${i}`).toBeGreaterThan(last);
      else expect(v, `op ${i}`).toBe(last);
      if (r.status === 200) expect((r.body as RS).version).toBeLessThanOrEqual(v);
      last = v;
    }
  });

  it('since below the tombstone horizon answers everything (full) and no deleted ids', async () => {
    // One shard with four user slots: its tombstone ring keeps the last four deletes.
    const u = '77';
    for (let c = 1; c <= 8; c++) await call(small.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {});
    const before = await list(small.url, u);
    const versions: number[] = [];
    for (let c = 1; c <= 6; c++) {
      expect((await call(small.url, 'DELETE', `/v1/users/${u}/read-states/${c}`)).status).toBe(204);
      versions.push((await summary(small.url, u)).version);
    }
    // the first two deletes fell out of the ring: a delta from before them cannot be exact
    const old = await list(small.url, u, `?since=${before.version}`);
    expect(old).toEqual({ user_id: u, version: versions[5], full: true, read_states: (await list(small.url, u)).read_states });
    expect(old.read_states.map((r) => r.channel_id)).toEqual(['7', '8']);
    const fromFirst = await list(small.url, u, `?since=${versions[0]}`);
    expect(fromFirst.full).toBe(true);
    // from the second delete on, the ring has every later delete
    const recent = await list(small.url, u, `?since=${versions[1]}`);
    expect(recent).toMatchObject({ full: false, read_states: [], deleted_channel_ids: ['3', '4', '5', '6'] });
    expect((await list(small.url, u, `?since=${versions[4]}`)).deleted_channel_ids).toEqual(['6']);
  });
});

describe('deletes in bulk, and the horizon a reload brings', () => {
  it('many deletes of one user: sorted, each once, across pages', async () => {
    const u = '9300';
    const channels = Array.from({ length: 60 }, (_, i) => ((BigInt(i + 1) * 0x9e3779b97f4a7c15n) & ((1n << 64n) - 1n)).toString());
    for (const c of channels) await call(s.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {});
    const v0 = (await list(s.url, u)).version;
    const gone = channels.filter((_, i) => i % 3 !== 0);
    // deleted in a scrambled order, some created and deleted again
    for (const c of [...gone].reverse()) expect((await call(s.url, 'DELETE', `/v1/users/${u}/read-states/${c}`)).status).toBe(204);
    for (const c of gone.slice(0, 5)) {
      await call(s.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {});
      await call(s.url, 'DELETE', `/v1/users/${u}/read-states/${c}`);
    }
    const d = await list(s.url, u, `?since=${v0}`);
    expect(d.read_states).toEqual([]);
    expect(d.deleted_channel_ids).toEqual([...gone].sort(u64Less));
    const paged: string[] = [];
    let cursor = '0';
    for (;;) {
      const page = await list(s.url, u, `?since=${v0}&limit=4&after=${cursor}`);
      paged.push(...page.deleted_channel_ids!);
      if (page.next_after === undefined) break;
      cursor = page.next_after;
    }
    expect(paged).toEqual(d.deleted_channel_ids);
  });

  it('after an eviction the store brings back the newest 64 deletes and a horizon below them', async () => {
    const store = new MemoryStore();
    const svc = await startService({ shards: 1, capacity: 2000, maxUsers: 200 }, store);
    try {
      const u = '5';
      for (let c = 1; c <= 90; c++) await call(svc.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {});
      const versions: number[] = [];
      for (let c = 1; c <= 80; c++) {
        expect((await call(svc.url, 'DELETE', `/v1/users/${u}/read-states/${c}`)).status).toBe(204);
        versions.push((await summary(svc.url, u)).version);
      }
      const before = await list(svc.url, u);
      expect(await svc.service.writeBehind.drain(5000)).toBe(true);
      for (let other = 1000; other < 1250; other++) await call(svc.url, 'POST', `/v1/users/${other}/read-states/1/mentions`, {});
      const stats = (await call(svc.url, 'GET', '/v1/stats')).body as { shards: { evictions: number }[] };
      expect(stats.shards[0].evictions).toBeGreaterThan(0);
      expect(await list(svc.url, u)).toEqual(before);
      // deletes 1..16 are below the horizon (the 16th delete's timestamp); 17..80 came back
      expect((await list(svc.url, u, `?since=${versions[14]}`)).full).toBe(true);
      const exact = await list(svc.url, u, `?since=${versions[15]}`);
      expect(exact.full).toBe(false);
      expect(exact.deleted_channel_ids).toEqual(Array.from({ length: 64 }, (_, i) => String(17 + i)).sort(u64Less));
      expect((await list(svc.url, u, `?since=${versions[78]}`)).deleted_channel_ids).toEqual(['80']);
    } finally {
      await svc.close();
    }
  });
});

describe('paged reads', () => {
  it('orders by unsigned 64-bit channel id, with next_after until the last page', async () => {
    const u = '9100';
    const channels = ['18446744073709551615', '9223372036854775808', '9223372036854775807', '4294967296', '4294967295', '1', '2', '10'];
    for (const c of channels) await call(s.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {});
    const all = await list(s.url, u);
    expect(ids(all.read_states)).toEqual([...channels].sort(u64Less));
    expect(all.next_after).toBeUndefined();
    const p1 = await list(s.url, u, '?limit=3');
    expect(ids(p1.read_states)).toEqual(['1', '2', '10']);
    expect(p1.next_after).toBe('10');
    const p2 = await list(s.url, u, `?limit=3&after=${p1.next_after}`);
    expect(ids(p2.read_states)).toEqual(['4294967295', '4294967296', '9223372036854775807']);
    const p3 = await list(s.url, u, `?limit=3&after=${p2.next_after}`);
    expect(ids(p3.read_states)).toEqual(['9223372036854775808', '18446744073709551615']);
    expect(p3.next_after).toBeUndefined();
    // exactly the page size left: no cursor
    expect((await list(s.url, u, '?limit=8')).next_after).toBeUndefined();
    expect((await list(s.url, u, '?after=18446744073709551615')).read_states).toEqual([]);
    expect(ids((await list(s.url, u, '?after=0&limit=1')).read_states)).toEqual(['1']);
  });

  it('rejects bad query strings with 400 INVALID_QUERY', async () => {
    for (const q of ['?since=abc', '?since=-1', '?since=01', '?since=9007199254740992', '?limit=0', '?limit=10001', '?limit=x', '?after=-1', '?after=18446744073709551616', '?foo=1', '?since=1&since=2']) {
      const r = await call(s.url, 'GET', `/v1/users/1/read-states${q}`);
      expect(r.status, q).toBe(400);
      expect((r.body as { error: string }).error, q).toBe('INVALID_QUERY');
    }
    expect((await call(s.url, 'GET', '/v1/users/0/read-states')).body).toMatchObject({ error: 'INVALID_ID' });
    expect((await call(s.url, 'GET', '/v1/users/0/summary')).body).toMatchObject({ error: 'INVALID_ID' });
  });

  it('property: pages of the full list and of a delta add up to it, and a delta turns the old list into the new one', async () => {
    const channel = fc.oneof(fc.bigInt({ min: 1n, max: 40n }), fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }));
    const op = fc.record({ kind: fc.constantFrom('ack', 'mention', 'patch', 'delete'), channel, n: fc.integer({ min: 0, max: 1000 }) });
    let user = 20_000;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), fc.array(op, { maxLength: 40 }), fc.integer({ min: 1, max: 7 }), async (before, after, limit) => {
        const u = String(user++);
        const apply = async (o: { kind: string; channel: bigint; n: number }): Promise<void> => {
          const path = `/v1/users/${u}/read-states/${o.channel}`;
          if (o.kind === 'ack') await call(s.url, 'POST', path + '/ack', { message_id: String(o.n) });
          else if (o.kind === 'mention') await call(s.url, 'POST', path + '/mentions', { count: 1 + (o.n % 5) });
          else if (o.kind === 'patch') await call(s.url, 'PATCH', path, { flags: o.n % 4 });
          else await call(s.url, 'DELETE', path);
        };
        for (const o of before) await apply(o);
        const old = await list(s.url, u);
        for (const o of after) await apply(o);
        const now = await list(s.url, u);

        // pages of the full list
        const paged: RS[] = [];
        let cursor: string | undefined;
        for (let guard = 0; guard < 100; guard++) {
          const page = await list(s.url, u, `?limit=${limit}${cursor === undefined ? '' : `&after=${cursor}`}`);
          expect(page.full).toBe(true);
          expect(page.read_states.length).toBeLessThanOrEqual(limit);
          paged.push(...page.read_states);
          cursor = page.next_after;
          if (cursor === undefined) break;
        }
        expect(paged).toEqual(now.read_states);
        expect(ids(now.read_states)).toEqual([...ids(now.read_states)].sort(u64Less));

        // the delta since the old version, in pages
        const changed: RS[] = [];
        const deleted: string[] = [];
        cursor = undefined;
        for (let guard = 0; guard < 100; guard++) {
          const page = await list(s.url, u, `?since=${old.version}&limit=${limit}${cursor === undefined ? '' : `&after=${cursor}`}`);
          expect(page.full).toBe(false);
          changed.push(...page.read_states);
          deleted.push(...page.deleted_channel_ids!);
          cursor = page.next_after;
          if (cursor === undefined) break;
        }
        expect(ids(changed)).toEqual([...ids(changed)].sort(u64Less));
        expect(deleted).toEqual([...new Set(deleted)].sort(u64Less));
        // exactly the read states whose version moved
        const oldById = new Map(old.read_states.map((r) => [r.channel_id, r]));
        expect(changed).toEqual(now.read_states.filter((r) => oldById.get(r.channel_id)?.version !== r.version));
        // deleted ids: every channel that went away, only channels deleted after the old version
        const nowIds = new Set(ids(now.read_states));
        const deletedAfter = new Set(after.filter((o) => o.kind === 'delete').map((o) => o.channel.toString()));
        for (const c of deleted) {
          expect(nowIds.has(c)).toBe(false);
          expect(deletedAfter.has(c)).toBe(true);
        }
        for (const c of oldById.keys()) if (!nowIds.has(c)) expect(deleted).toContain(c);
        // the client's view: the old list with the delta applied is the new one
        const view = new Map(oldById);
        for (const c of deleted) view.delete(c);
        for (const r of changed) view.set(r.channel_id, r);
        expect([...view.values()].sort((a, b) => u64Less(a.channel_id, b.channel_id))).toEqual(now.read_states);
        expect(now.version).toBeGreaterThanOrEqual(old.version);
        if (changed.length > 0 || deleted.length > 0) expect(now.version).toBeGreaterThan(old.version);
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});

describe('unread summary', () => {
  it('matches the list: read states, mention total, channels with mentions, version', async () => {
    const u = '9200';
    expect(await summary(s.url, u)).toEqual({ user_id: u, version: 0, read_states: 0, mention_total: 0, channels_with_mentions: 0 });
    await call(s.url, 'POST', `/v1/users/${u}/read-states/1/mentions`, { count: 1000 });
    await call(s.url, 'POST', `/v1/users/${u}/read-states/2/ack`, { message_id: '5', mention_count: 2147483647 });
    await call(s.url, 'POST', `/v1/users/${u}/read-states/3/ack`, { message_id: '5' });
    await call(s.url, 'POST', `/v1/users/${u}/read-states/4/mentions`, {});
    await call(s.url, 'DELETE', `/v1/users/${u}/read-states/4`);
    const all = await list(s.url, u);
    expect(await summary(s.url, u)).toEqual({
      user_id: u,
      version: all.version,
      read_states: 3,
      mention_total: 1000 + 2147483647,
      channels_with_mentions: 2,
    });
  });

  it('property: summaries of many users in one batch match each user list', async () => {
    const users = Array.from({ length: 30 }, (_, i) => String(30_000 + i));
    let seed = 99;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    const ops: unknown[] = [];
    for (let i = 0; i < 600; i++) {
      const user_id = users[next(users.length)];
      const channel_id = String(1 + next(20));
      const k = next(4);
      if (k === 0) ops.push({ op: 'mention', user_id, channel_id, count: 1 + next(9) });
      else if (k === 1) ops.push({ op: 'ack', user_id, channel_id, message_id: String(next(1000)), mention_count: next(3) });
      else if (k === 2) ops.push({ op: 'delete', user_id, channel_id });
      else ops.push({ op: 'patch', user_id, channel_id, flags: next(2) });
    }
    expect((await call(s.url, 'POST', '/v1/batch', { ops })).status).toBe(200);
    const b = await call(s.url, 'POST', '/v1/batch', { ops: [...users.map((user_id) => ({ op: 'summary', user_id })), { op: 'get', user_id: users[0], channel_id: '999' }] });
    expect(b.status).toBe(200);
    const results = (b.body as { results: { status: number; summary?: SummaryBody; error?: string }[] }).results;
    expect(results).toHaveLength(users.length + 1);
    expect(results[users.length]).toEqual({ status: 404, error: 'NOT_FOUND' });
    for (let i = 0; i < users.length; i++) {
      const all = await list(s.url, users[i]);
      expect(results[i]).toEqual({
        status: 200,
        summary: {
          user_id: users[i],
          version: all.version,
          read_states: all.read_states.length,
          mention_total: all.read_states.reduce((t, r) => t + r.mention_count, 0),
          channels_with_mentions: all.read_states.filter((r) => r.mention_count > 0).length,
        },
      });
    }
  });

  it('batch summary ops are validated like the others', async () => {
    const bad = [
      { op: 'summary', user_id: '1', channel_id: '2' },
      { op: 'summary', user_id: '1', count: 2 },
      { op: 'get', user_id: '1' },
      { op: 'summary' },
    ];
    for (const op of bad) {
      const r = await call(s.url, 'POST', '/v1/batch', { ops: [{ op: 'summary', user_id: '1' }, op] });
      expect(r.status, JSON.stringify(op)).toBe(400);
      expect((r.body as { error: string }).error).toBe('INVALID_BODY');
    }
    const r = await call(s.url, 'POST', '/v1/batch', { ops: [{ op: 'summary', user_id: '0' }] });
    expect(r.body).toMatchObject({ error: 'INVALID_ID' });
  });
});

describe('the OpenAPI document', () => {
  it('describes the query parameters, the delta fields and the summary route', async () => {
    const doc = (await call(s.url, 'GET', '/docs/json')).body as { paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; responses: Record<string, unknown> }>> };
    const listRoute = doc.paths['/v1/users/{user_id}/read-states'].get;
    expect(listRoute.parameters!.filter((p) => p.in === 'query').map((p) => p.name).sort()).toEqual(['after', 'limit', 'since']);
    expect(JSON.stringify(listRoute.responses['200'])).toContain('deleted_channel_ids');
    expect(JSON.stringify(listRoute.responses['200'])).toContain('next_after');
    expect(doc.paths['/v1/users/{user_id}/summary'].get.responses['200']).toBeDefined();
    expect(JSON.stringify(doc.paths['/v1/batch'].post)).toContain('summary');
  });
});
