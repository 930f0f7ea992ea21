/**
 * The client on the issue-15 routes, against the real service: GET /v1/users/{id}/read-states with
 * since / limit / after (deltas and pages), GET /v1/users/{id}/summary and the batch summary op.
 * Answers are checked field for field (no more, no fewer than the client's types declare); and,
 * against a stub, a server that predates delta sync.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, ReadStatesClient, ServerError, type ReadState, type UserReadStates } from '../../client/index.js';
import { startService, type RunningService } from '../support/service.js';
import { json, startStub } from '../support/stub-server.js';
import { requestsOn } from '../support/metrics-text.js';

let s: RunningService;
let client: ReadStatesClient;

beforeAll(async () => {
  s = await startService({ shards: 2 });
  client = new ReadStatesClient({ url: s.url });
});

afterAll(async () => {
  await client?.close();
  await s?.close();
});

const channels = (rs: ReadState[]): string[] => rs.map((r) => r.channel_id);
const keys = (o: object): string[] => Object.keys(o).sort();

/** Applies a delta to a local copy as the README says: drop the deleted, upsert the changed. */
function applyDelta(local: Map<string, ReadState>, d: UserReadStates): void {
  if (d.full) local.clear();
  for (const ch of d.deleted_channel_ids ?? []) local.delete(ch);
  for (const r of d.read_states) local.set(r.channel_id, r);
}

describe('GET /v1/users/{id}/read-states: full answers and deltas', () => {
  it('a full answer is {user_id, version, full: true, read_states}; a delta since its version carries only what changed and what was deleted', async () => {
    await client.ack('20', '1', { messageId: '1' });
    await client.ack('20', '2', { messageId: '1' });
    await client.ack('20', '3', { messageId: '1' });
    const full = await client.getReadStates('20');
    expect(keys(full)).toEqual(['full', 'read_states', 'user_id', 'version']);
    expect(full).toMatchObject({ user_id: '20', full: true });
    expect(Number.isSafeInteger(full.version) && full.version > 0).toBe(true);
    expect(channels(full.read_states)).toEqual(['1', '2', '3']);
    // the user's version is that of their latest change
    expect(full.version).toBe(Math.max(...full.read_states.map((r) => r.version)));

    await client.mention('20', '2');
    await client.deleteReadState('20', '3');
    const delta = await client.getReadStates('20', { since: full.version });
    expect(keys(delta)).toEqual(['deleted_channel_ids', 'full', 'read_states', 'user_id', 'version']);
    expect(delta.full).toBe(false);
    expect(channels(delta.read_states)).toEqual(['2']);
    expect(delta.read_states[0].version).toBeGreaterThan(full.version);
    expect(delta.deleted_channel_ids).toEqual(['3']);
    expect(delta.version).toBeGreaterThan(full.version);

    // nothing changed since: an empty delta at the same version
    expect(await client.getReadStates('20', { since: delta.version })).toEqual({ user_id: '20', version: delta.version, full: false, read_states: [], deleted_channel_ids: [] });
    // a change that changes nothing leaves the version alone
    await client.ack('20', '1', { messageId: '1' });
    expect((await client.getReadStates('20')).version).toBe(delta.version);
  });

  it('an unknown user: version 0 and nothing; since 0 is an empty delta', async () => {
    expect(await client.getReadStates('9000')).toEqual({ user_id: '9000', version: 0, full: true, read_states: [] });
    expect(await client.getReadStates('9000', { since: 0 })).toEqual({ user_id: '9000', version: 0, full: false, read_states: [], deleted_channel_ids: [] });
  });

  it('since above the user\'s version fails with SINCE_AHEAD (400), not an empty delta', async () => {
    await client.ack('22', '1', { messageId: '1' });
    const { version } = await client.getReadStates('22');
    const e = await client.getReadStates('22', { since: version + 1 }).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(InvalidRequestError);
    expect(e).toMatchObject({ code: 'SINCE_AHEAD', status: 400, attempts: 1 });
  });

  it('bad since / limit / after fail with INVALID_QUERY before anything is sent, as the server would answer them', async () => {
    const before = await requestsOn(s.url, '/v1/users/:user_id/read-states');
    const bad = [{ since: -1 }, { since: 1.5 }, { since: Number.MAX_SAFE_INTEGER + 1 }, { limit: 0 }, { limit: 10_001 }, { after: 'x' }, { after: '01' }];
    for (const q of bad) {
      const e = await client.getReadStates('23', q).catch((err: unknown) => err);
      expect(e, JSON.stringify(q)).toBeInstanceOf(InvalidRequestError);
      expect(e, JSON.stringify(q)).toMatchObject({ code: 'INVALID_QUERY', status: 400 });
    }
    expect(await requestsOn(s.url, '/v1/users/:user_id/read-states')).toBe(before);
    // the server gives the same codes for them
    for (const q of ['since=-1', 'since=1.5', 'since=9007199254740992', 'limit=0', 'limit=10001', 'after=x', 'after=01']) {
      const r = await fetch(`${s.url}/v1/users/23/read-states?${q}`);
      expect(r.status, q).toBe(400);
      expect(await r.json(), q).toMatchObject({ error: 'INVALID_QUERY' });
    }
    // and the edges are fine
    await expect(client.getReadStates('23', { since: 0, limit: 10_000, after: '0' })).resolves.toMatchObject({ full: false });
    await expect(client.getReadStates('23', { after: '18446744073709551615' })).resolves.toMatchObject({ read_states: [] });
  });
});

describe('GET /v1/users/{id}/read-states: pages', () => {
  it('limit cuts the list and next_after continues it; the last page has none', async () => {
    for (const ch of ['1', '2', '3', '4', '5']) await client.ack('21', ch, { messageId: '1' });
    const pages: UserReadStates[] = [];
    let after: string | undefined;
    for (let n = 0; n < 10; n++) {
      const page = await client.getReadStates('21', { limit: 2, ...(after === undefined ? {} : { after }) });
      pages.push(page);
      after = page.next_after;
      if (after === undefined) break;
    }
    expect(pages.map((p) => channels(p.read_states))).toEqual([['1', '2'], ['3', '4'], ['5']]);
    expect(pages.map((p) => p.next_after)).toEqual(['2', '4', undefined]);
    expect(keys(pages[0])).toEqual(['full', 'next_after', 'read_states', 'user_id', 'version']);
    expect(keys(pages[2])).toEqual(['full', 'read_states', 'user_id', 'version']);
    expect(pages.every((p) => p.full)).toBe(true);
    // a limit the list fits in: no next_after
    expect((await client.getReadStates('21', { limit: 5 })).next_after).toBeUndefined();
  });

  it('delta sync in pages: the pages add up to the whole delta; keep the first page\'s version as the next since', async () => {
    const u = '24';
    for (const ch of ['1', '2', '3', '4', '5', '6']) await client.ack(u, ch, { messageId: '1' });
    const local = new Map<string, ReadState>();

    /** One sync, as README's Client section shows it (with pages of 2). */
    const sync = async (since?: number): Promise<number> => {
      let next: number | undefined;
      let after: string | undefined;
      do {
        const page = await client.getReadStates(u, { since, limit: 2, after });
        next ??= page.version;
        if (page.full && after === undefined) local.clear();
        for (const ch of page.deleted_channel_ids ?? []) local.delete(ch);
        for (const r of page.read_states) local.set(r.channel_id, r);
        after = page.next_after;
      } while (after !== undefined);
      return next;
    };

    let since = await sync();
    expect([...local.keys()]).toEqual(['1', '2', '3', '4', '5', '6']);
    await client.mention(u, '2');
    await client.patch(u, '5', { flags: 1 });
    await client.deleteReadState(u, '3');
    await client.deleteReadState(u, '6');
    since = await sync(since);
    expect(local).toEqual(new Map((await client.getReadStates(u)).read_states.map((r) => [r.channel_id, r])));
    expect([...local.keys()].sort()).toEqual(['1', '2', '4', '5']);

    // a change made between two pages of a sync, to a channel already passed, is in the next delta
    await client.mention(u, '2');
    await client.mention(u, '4');
    await client.mention(u, '5');
    const p1 = await client.getReadStates(u, { since, limit: 2 });
    expect(channels(p1.read_states)).toEqual(['2', '4']);
    expect(p1.next_after).toBe('4');
    applyDelta(local, p1);
    await client.mention(u, '1');
    let after = p1.next_after;
    while (after !== undefined) {
      const page = await client.getReadStates(u, { since, limit: 2, after });
      applyDelta(local, page);
      after = page.next_after;
    }
    await sync(p1.version);
    expect(local).toEqual(new Map((await client.getReadStates(u)).read_states.map((r) => [r.channel_id, r])));
    expect(local.get('1')!.mention_count).toBe(1);
    expect(local.get('5')!.mention_count).toBe(1);
  });
});

describe('GET /v1/users/{id}/summary and the batch summary op', () => {
  it('counts read states and mentions; its version is the list\'s', async () => {
    await client.mention('30', '1', { count: 3 });
    await client.mention('30', '2', { count: 1 });
    await client.ack('30', '3', { messageId: '1' });
    const sum = await client.summary('30');
    const list = await client.getReadStates('30');
    expect(sum).toEqual({ user_id: '30', version: list.version, read_states: 3, mention_total: 4, channels_with_mentions: 2 });
    // it is a valid since
    expect(await client.getReadStates('30', { since: sum.version })).toMatchObject({ full: false, read_states: [], deleted_channel_ids: [] });
    expect(await client.summary('9001')).toEqual({ user_id: '9001', version: 0, read_states: 0, mention_total: 0, channels_with_mentions: 0 });
  });

  it('batch: {op: "summary", user_id} is answered {status: 200, summary}, alongside other ops', async () => {
    await client.mention('31', '1', { count: 2 });
    const b = await client.batch([
      { op: 'summary', user_id: '30' },
      { op: 'summary', user_id: '31' },
      { op: 'get', user_id: '31', channel_id: '1' },
      { op: 'get', user_id: '31', channel_id: '2' },
    ]);
    expect(b.results[0]).toEqual({ status: 200, summary: await client.summary('30') });
    expect(b.results[1]).toEqual({ status: 200, summary: { user_id: '31', version: b.results[2].read_state!.version, read_states: 1, mention_total: 2, channels_with_mentions: 1 } });
    expect(keys(b.results[2])).toEqual(['read_state', 'status']);
    expect(b.results[3]).toEqual({ status: 404, error: 'NOT_FOUND' });
  });
});

describe('a server that predates delta sync', () => {
  it('a list without version and full fails with UNSUPPORTED_BY_SERVER, not a full list passed off as a delta', async () => {
    const stub = await startStub((_r, res) => json(res, 200, { user_id: '10', read_states: [] }));
    const c = new ReadStatesClient({ url: stub.url });
    try {
      for (const q of [{}, { since: 5 }, { limit: 2 }]) {
        const e = await c.getReadStates('10', q).catch((err: unknown) => err);
        expect(e).toBeInstanceOf(ServerError);
        expect(e).toMatchObject({ code: 'UNSUPPORTED_BY_SERVER', status: 200 });
      }
    } finally {
      await c.close();
      await stub.close();
    }
  });

  it('an answer of another shape is BAD_RESPONSE', async () => {
    const stub = await startStub((r, res) =>
      r.path.includes('summary')
        ? json(res, 200, { user_id: '10', version: 1, read_states: 0, mention_total: 0 })
        : json(res, 200, { user_id: '10', version: 1, full: 'yes', read_states: [] }),
    );
    const c = new ReadStatesClient({ url: stub.url });
    try {
      await expect(c.getReadStates('10')).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringContaining('full') });
      await expect(c.summary('10')).rejects.toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringContaining('channels_with_mentions') });
    } finally {
      await c.close();
      await stub.close();
    }
  });
});
