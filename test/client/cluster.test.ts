/**
 * The `cluster` option: stub servers play three instances (a: the configured URL, b, c) and a's
 * GET /v1/cluster answer. Calls land on their partition's owner (counted per stub), go to the
 * configured URL when the owner is null, gone or unreachable, and the map is reloaded after an
 * answer saying it is stale and periodically (not after close). Coalesced batches are split by
 * owner, each caller getting its own result. Without the option, /v1/cluster is never asked for.
 */
import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReadStatesClient, type ClusterState, type ReadState, type ReadStatesError } from '../../client/index.js';
import { partitionOf } from '../../workers/hash.js';
import { json, startStub, stubReadState, type Stub, type StubRequest } from '../support/stub-server.js';
import { until } from '../support/until.js';

const PARTITIONS = 4;
const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];

/** A user id (small, so hi = 0) in partition p, the i-th one. */
function userIn(p: number, i = 0): string {
  let found = 0;
  for (let u = 1; ; u++) {
    if (partitionOf(u, 0, PARTITIONS) === p && found++ === i) return String(u);
  }
}

interface Instance {
  name: Name;
  stub: Stub;
  /** answers this request instead of the default, when it returns true */
  override: ((req: StubRequest, res: ServerResponse) => boolean) | undefined;
}

let inst: Record<Name, Instance>;
/** what a answers on GET /v1/cluster (a function: the test may change it) */
let clusterAnswer: () => { status: number; body: unknown } | 'hang';
const clients: ReadStatesClient[] = [];

/** The flag a stub sets in the read states it answers: which instance answered. */
const TAG: Record<Name, number> = { a: 1, b: 2, c: 3 };

function answer(name: Name, req: StubRequest, res: ServerResponse): void {
  const path = req.path.split('?')[0];
  const tag = TAG[name];
  if (path === '/v1/cluster') {
    const a = clusterAnswer();
    if (a === 'hang') return; // never answered (the stub's close ends it)
    return json(res, a.status, a.body);
  }
  if (path === '/health') return json(res, 200, { status: 'ok' });
  if (path === '/v1/batch') {
    const ops = (req.body as { ops: { user_id: string; channel_id: string }[] }).ops;
    return json(res, 200, { results: ops.map((op) => ({ status: 200, read_state: stubReadState(op.user_id, op.channel_id, { flags: tag }) })) });
  }
  let m = /^\/v1\/users\/(\d+)\/read-states\/(\d+)(\/ack|\/mentions)?$/.exec(path);
  if (m !== null) {
    if (req.method === 'DELETE') {
      res.writeHead(204);
      return void res.end();
    }
    return json(res, 200, stubReadState(m[1], m[2], { flags: tag }));
  }
  m = /^\/v1\/users\/(\d+)\/read-states$/.exec(path);
  if (m !== null) return json(res, 200, { user_id: m[1], version: tag, full: true, read_states: [] });
  m = /^\/v1\/users\/(\d+)\/summary$/.exec(path);
  if (m !== null) return json(res, 200, { user_id: m[1], version: tag, read_states: 0, mention_total: 0, channels_with_mentions: 0 });
  m = /^\/v1\/users\/(\d+)\/read-states\/ack-bulk$/.exec(path);
  if (m !== null) {
    const items = (req.body as { read_states: { channel_id: string }[] }).read_states;
    return json(res, 200, { read_states: items.map((it) => stubReadState(m![1], it.channel_id, { flags: tag })) });
  }
  json(res, 404, { error: 'ROUTE_NOT_FOUND', message: 'no such route' });
}

/** A cluster map: owners[p] is the instance named, or null. */
function mapOf(owners: (Name | null)[], alive: Partial<Record<Name, boolean>> = {}): ClusterState {
  return {
    cluster: 'test',
    instance_id: 'a',
    partitions: owners.length,
    lease_ms: 10_000,
    members: NAMES.map((n) => ({ instance_id: n, url: inst[n].stub.url, alive: alive[n] ?? true, leaving: false })),
    owners: owners.map((n, p) => (n === null ? { owner: null, url: null, epoch: p + 1 } : { owner: n, url: inst[n].stub.url, epoch: p + 1 })),
  };
}

function serve(map: () => ClusterState): void {
  clusterAnswer = () => ({ status: 200, body: map() });
}

/** Requests a stub got, not counting GET /v1/cluster. */
function calls(n: Name): StubRequest[] {
  return inst[n].stub.requests.filter((r) => r.path !== '/v1/cluster');
}

function mapLoads(): number {
  return inst.a.stub.requests.filter((r) => r.path === '/v1/cluster').length;
}

function clientOf(options: Partial<ConstructorParameters<typeof ReadStatesClient>[0]> = {}): ReadStatesClient {
  const c = new ReadStatesClient({ url: inst.a.stub.url, cluster: true, retry: { baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 50, maxAttempts: 4 }, ...options });
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

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  const made = {} as Record<Name, Instance>;
  for (const name of NAMES) {
    const i: Instance = { name, stub: undefined as unknown as Stub, override: undefined };
    i.stub = await startStub((req, res) => {
      if (i.override?.(req, res) === true) return;
      answer(name, req, res);
    });
    made[name] = i;
  }
  inst = made;
  serve(() => mapOf(['b', 'b', 'c', 'a']));
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(NAMES.map((n) => inst[n].stub.close()));
});

describe('cluster routing', () => {
  it("sends each single-user call to its partition's owner, after one load of the map", async () => {
    const c = clientOf({ coalesce: false });
    const u = [0, 1, 2, 3].map((p) => userIn(p));
    // partitions 0, 1 -> b; 2 -> c; 3 -> a
    const got = await Promise.all([c.ack(u[0], '1', { messageId: '5' }), c.mention(u[1], '1'), c.patch(u[2], '1', { flags: 9 }), c.getReadState(u[3], '1')]);
    expect(got.map((r) => r.flags)).toEqual([TAG.b, TAG.b, TAG.c, TAG.a]);
    expect(calls('b').map((r) => r.path)).toEqual(expect.arrayContaining([`/v1/users/${u[0]}/read-states/1/ack`, `/v1/users/${u[1]}/read-states/1/mentions`]));
    expect(calls('b')).toHaveLength(2);
    expect(calls('c').map((r) => `${r.method} ${r.path}`)).toEqual([`PATCH /v1/users/${u[2]}/read-states/1`]);
    expect(calls('a').map((r) => `${r.method} ${r.path}`)).toEqual([`GET /v1/users/${u[3]}/read-states/1`]);
    // the map was loaded first, once, and only from the configured URL
    expect(mapLoads()).toBe(1);
    expect(inst.a.stub.requests[0].path).toBe('/v1/cluster');
    expect(inst.b.stub.requests.some((r) => r.path === '/v1/cluster')).toBe(false);

    // the other single-user routes too; multi-user ones and health go to the configured URL
    expect((await c.getReadStates(u[2])).version).toBe(TAG.c);
    expect((await c.summary(u[0])).version).toBe(TAG.b);
    expect((await c.ackBulk(u[2], [{ channelId: '1', messageId: '2' }])).read_states[0].flags).toBe(TAG.c);
    await c.deleteReadState(u[1], '1');
    expect(calls('b').at(-1)).toMatchObject({ method: 'DELETE', path: `/v1/users/${u[1]}/read-states/1` });
    await c.health();
    await c.batch([{ op: 'get', user_id: u[0], channel_id: '1' }]);
    expect(calls('a').slice(-2).map((r) => r.path)).toEqual(['/health', '/v1/batch']);
    expect(mapLoads()).toBe(1);
  });

  it('the same ids as the server: users of 64 partitions spread over 3 owners land where the map says', async () => {
    const owners = Array.from({ length: 64 }, (_, p) => NAMES[(p * 7) % 3]);
    serve(() => mapOf(owners));
    const c = clientOf({ coalesce: false });
    // large ids (both halves used): the client computes the partition from the decimal text
    const ids = Array.from({ length: 200 }, (_, i) => 1_101_010_101_010_101_010n + BigInt(i) * 4_194_304n);
    const got = await Promise.all(ids.map((id) => c.getReadState(id, '1')));
    for (let i = 0; i < ids.length; i++) {
      const p = partitionOf(Number(ids[i] & 0xffffffffn), Number(ids[i] >> 32n), 64);
      expect(got[i].flags, `user ${ids[i]} of partition ${p}`).toBe(TAG[owners[p]]);
    }
  });

  it('falls back to the configured URL when the owner is null or the map says it is not alive', async () => {
    serve(() => mapOf(['b', null, 'c', 'a'], { c: false }));
    const c = clientOf({ coalesce: false });
    expect((await c.getReadState(userIn(1), '1')).flags).toBe(TAG.a); // no owner
    expect((await c.getReadState(userIn(2), '1')).flags).toBe(TAG.a); // owner c not alive
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.b);
    expect(calls('c')).toHaveLength(0);
  });

  it('reloads the map at once after PARTITION_UNAVAILABLE, and the retry goes to the new owner', async () => {
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 60_000 } });
    const user = userIn(0);
    let owner: Name = 'b';
    serve(() => mapOf([owner, 'b', 'c', 'a']));
    await c.getReadState(userIn(3), '1'); // the map is loaded
    expect(mapLoads()).toBe(1);
    // b hands partition 0 over to c: it refuses (not applied), and the map now says c
    inst.b.override = (req, res) => {
      owner = 'c';
      json(res, 503, { error: 'PARTITION_UNAVAILABLE', message: 'moving', applied: false }, { 'retry-after': '1' });
      return true;
    };
    const r = await c.mention(user, '1');
    expect(r.flags).toBe(TAG.c);
    expect(calls('b')).toHaveLength(1);
    expect(calls('c')).toHaveLength(1);
    expect(mapLoads()).toBe(2);
  });

  it('FORWARD_FAILED and LEASE_LOST (applied: null) reload the map but are not retried', async () => {
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 60_000 } });
    await c.getReadState(userIn(3), '1');
    for (const code of ['FORWARD_FAILED', 'LEASE_LOST']) {
      const loads = mapLoads();
      inst.b.override = (req, res) => {
        json(res, 503, { error: code, message: 'unknown outcome', applied: null }, { 'retry-after': '1' });
        return true;
      };
      const before = calls('b').length;
      const err = await rejected(c.mention(userIn(0), '1'));
      expect(err).toMatchObject({ code, status: 503, applied: null, attempts: 1 });
      expect(calls('b')).toHaveLength(before + 1);
      await until(`a reload after ${code}`, () => mapLoads() === loads + 1);
    }
  });

  it('a coalesced batch is split by owner; each caller gets its own result, in its order', async () => {
    const c = clientOf();
    await c.getReadState(userIn(3), '1'); // the map is loaded (one op alone: its own route)
    const users = [0, 2, 3, 1, 2, 0, 3, 2].map((p, i) => userIn(p, i));
    const owners: Name[] = [0, 2, 3, 1, 2, 0, 3, 2].map((p) => (['b', 'b', 'c', 'a'] as const)[p]);
    const got: ReadState[] = await Promise.all(users.map((u, i) => c.ack(u, String(100 + i), { messageId: '7' })));
    for (let i = 0; i < users.length; i++) {
      expect(got[i]).toMatchObject({ user_id: users[i], channel_id: String(100 + i), flags: TAG[owners[i]] });
    }
    for (const n of NAMES) {
      const batches = calls(n).filter((r) => r.path === '/v1/batch');
      expect(batches, `batches on ${n}`).toHaveLength(1);
      const sent = (batches[0].body as { ops: { user_id: string; channel_id: string }[] }).ops;
      // exactly this owner's ops, in the callers' order
      const mine = users.map((u, i) => ({ u, ch: String(100 + i), o: owners[i] })).filter((x) => x.o === n);
      expect(sent.map((op) => [op.user_id, op.channel_id])).toEqual(mine.map((x) => [x.u, x.ch]));
    }
  });

  it('per-op PARTITION_UNAVAILABLE in a batch: the map is reloaded and only that op is retried, at its new owner', async () => {
    const c = clientOf({ cluster: { refreshMs: 60_000 } });
    let owner: Name = 'b';
    serve(() => mapOf([owner, 'b', 'c', 'a']));
    await c.getReadState(userIn(3), '1');
    const moving = userIn(0);
    const staying = userIn(1);
    inst.b.override = (req, res) => {
      if (req.path !== '/v1/batch') return false;
      owner = 'c';
      const ops = (req.body as { ops: { user_id: string; channel_id: string }[] }).ops;
      json(res, 200, {
        results: ops.map((op) =>
          op.user_id === moving ? { status: 503, error: 'PARTITION_UNAVAILABLE', applied: false } : { status: 200, read_state: stubReadState(op.user_id, op.channel_id, { flags: TAG.b }) },
        ),
      });
      return true;
    };
    const [m, s] = await Promise.all([c.mention(moving, '1'), c.mention(staying, '1')]);
    expect(m.flags).toBe(TAG.c);
    expect(s.flags).toBe(TAG.b);
    expect(calls('b').filter((r) => r.path === '/v1/batch')).toHaveLength(1);
    expect(calls('c').map((r) => r.path)).toEqual([`/v1/users/${moving}/read-states/1/mentions`]);
    expect(mapLoads()).toBe(2);
  });

  it('an owner that refuses connections: the map is reloaded and the retry goes to the configured URL', async () => {
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 60_000 } });
    await c.getReadState(userIn(3), '1');
    await inst.b.stub.close(); // b is gone, the map still names it
    const r = await c.ack(userIn(0), '1', { messageId: '3' });
    expect(r.flags).toBe(TAG.a);
    await until('a reload', () => mapLoads() === 2);
    // b stays passed over for refreshMs: the next call goes to a at once
    expect((await c.getReadState(userIn(1), '1')).flags).toBe(TAG.a);
  });

  it('reloads every refreshMs in the background (a moved partition is followed without an error) and stops at close', async () => {
    let owner: Name = 'b';
    serve(() => mapOf([owner, 'b', 'c', 'a']));
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 100 } });
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.b);
    owner = 'c';
    await until('two more loads', () => mapLoads() >= 3);
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.c);
    await c.close();
    const loads = mapLoads();
    await sleep(350);
    expect(mapLoads()).toBe(loads);
  });

  it('a single instance ({cluster: null}): everything to the configured URL, the map never asked for again', async () => {
    clusterAnswer = () => ({ status: 200, body: { cluster: null } });
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 100 } });
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.a);
    expect((await c.mention(userIn(2), '1')).flags).toBe(TAG.a);
    await sleep(350);
    expect(mapLoads()).toBe(1);
    expect(calls('b')).toHaveLength(0);
  });

  it('a server without the route (404) is a single instance too', async () => {
    clusterAnswer = () => ({ status: 404, body: { error: 'ROUTE_NOT_FOUND', message: 'no such route' } });
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 100 } });
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.a);
    await sleep(250);
    expect(mapLoads()).toBe(1);
  });

  it('a map that does not answer in time: the first calls go to the configured URL; a malformed one is not used', async () => {
    clusterAnswer = () => 'hang';
    const c = clientOf({ coalesce: false, cluster: { refreshMs: 150 } });
    const started = Date.now();
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.a);
    expect(Date.now() - started).toBeLessThan(1000);
    // owners of the wrong length: not a map to route by
    clusterAnswer = () => ({ status: 200, body: { ...mapOf(['b', 'b', 'c', 'a']), partitions: 5 } });
    await until('a reload', () => mapLoads() >= 2);
    await sleep(50);
    expect((await c.getReadState(userIn(0), '1')).flags).toBe(TAG.a);
    serve(() => mapOf(['b', 'b', 'c', 'a']));
    await until('a good map', async () => (await c.getReadState(userIn(0), '1')).flags === TAG.b);
  });

  it('clusterState() answers the map as is', async () => {
    const c = clientOf();
    const state = await c.clusterState();
    expect(state).toEqual(mapOf(['b', 'b', 'c', 'a']));
  });
});

describe('without the option', () => {
  it('never asks for /v1/cluster: every call goes to the configured URL, batches unsplit', async () => {
    const c = new ReadStatesClient({ url: inst.a.stub.url });
    clients.push(c);
    const users = [0, 1, 2, 3].map((p) => userIn(p));
    const got = await Promise.all(users.map((u) => c.mention(u, '1')));
    expect(got.map((r) => r.flags)).toEqual([TAG.a, TAG.a, TAG.a, TAG.a]);
    await c.getReadStates(users[0]);
    await sleep(100);
    expect(mapLoads()).toBe(0);
    expect(calls('a').map((r) => r.path)).toEqual(['/v1/batch', `/v1/users/${users[0]}/read-states`]);
    expect(calls('b')).toHaveLength(0);
    expect(calls('c')).toHaveLength(0);
  });
});
