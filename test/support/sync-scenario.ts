/**
 * A user's version and recent deletes must survive whatever makes the shard forget the user
 * (eviction, a restart, kill -9): the scenario writes, records the user's list and version, lets
 * `forget` happen, and checks that the list, the version and the deltas are what they were.
 */
import { expect } from 'vitest';
import { call } from './http-client.js';

interface ListBody {
  user_id: string;
  version: number;
  full: boolean;
  read_states: { channel_id: string; version: number }[];
  deleted_channel_ids?: string[];
}

async function list(url: string, user: string, query = ''): Promise<ListBody> {
  const r = await call(url, 'GET', `/v1/users/${user}/read-states${query}`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as ListBody;
}

async function ok(r: Promise<{ status: number; body: unknown }>): Promise<void> {
  const res = await r;
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
}

export interface Before {
  user: string;
  /** the version before the second round of changes */
  early: number;
  /** the user's full list after it (its version: the delete of channel 4) */
  last: ListBody;
}

/** Writes the scenario's changes for `user` (its last change is a delete). */
export async function writeScenario(url: string, user: string): Promise<Before> {
  const p = (c: number): string => `/v1/users/${user}/read-states/${c}`;
  await ok(call(url, 'POST', p(1) + '/mentions', { count: 3 }));
  await ok(call(url, 'POST', p(2) + '/ack', { message_id: '20' }));
  await ok(call(url, 'PATCH', p(3), { last_pin_timestamp: 1700000000000 }));
  await ok(call(url, 'POST', p(4) + '/mentions', {}));
  await ok(call(url, 'POST', p(5) + '/mentions', {}));
  await ok(call(url, 'DELETE', p(5)));
  const early = (await list(url, user)).version;
  await ok(call(url, 'POST', p(1) + '/ack', { message_id: '30' }));
  await ok(call(url, 'DELETE', p(4)));
  const last = await list(url, user);
  expect(last.version).toBeGreaterThan(early);
  expect(last.read_states.map((r) => r.channel_id)).toEqual(['1', '2', '3']);
  // the latest change is the delete: no read state carries the user's version
  expect(Math.max(...last.read_states.map((r) => r.version))).toBeLessThan(last.version);
  return { user, early, last };
}

/** After the shard forgot the user: the same list and version, and the same deltas. */
export async function checkScenario(url: string, b: Before): Promise<void> {
  const now = await list(url, b.user);
  expect(now).toEqual(b.last);
  expect(await list(url, b.user, `?since=${b.last.version}`)).toEqual({ user_id: b.user, version: b.last.version, full: false, read_states: [], deleted_channel_ids: [] });
  const delta = await list(url, b.user, `?since=${b.early}`);
  expect(delta.full).toBe(false);
  expect(delta.read_states.map((r) => r.channel_id)).toEqual(['1']);
  expect(delta.deleted_channel_ids).toEqual(['4']);
  // from before everything: channel 5's delete too
  expect((await list(url, b.user, '?since=0')).deleted_channel_ids).toEqual(['4', '5']);
  // and the next change is above it
  const r = await call(url, 'POST', `/v1/users/${b.user}/read-states/2/mentions`, {});
  expect((r.body as { version: number }).version).toBeGreaterThan(b.last.version);
}

/** Touches enough other users that `user` is evicted (asserts that it was). */
export async function evictBy(url: string, others: number, firstOther: number): Promise<void> {
  const before = ((await call(url, 'GET', '/v1/stats')).body as { shards: { evictions: number }[] }).shards.reduce((t, x) => t + x.evictions, 0);
  for (let i = 0; i < others; i++) await ok(call(url, 'POST', `/v1/users/${firstOther + i}/read-states/1/mentions`, {}));
  const after = ((await call(url, 'GET', '/v1/stats')).body as { shards: { evictions: number; users: number }[] }).shards;
  expect(after.reduce((t, x) => t + x.evictions, 0)).toBeGreaterThan(before);
}
