/**
 * Per-user cap and fan-out validation over real HTTP: a user at --max-read-states-per-user gets
 * 507 USER_READ_STATE_LIMIT for a new read state (nothing changes) while existing ones still
 * work, in single routes, batches and fan-out; an invalid id in a fan-out names its own index.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService;
beforeAll(async () => {
  s = await startService({ maxReadStatesPerUser: 3 });
});
afterAll(async () => {
  await s.close();
});

it('a user at the cap gets 507 USER_READ_STATE_LIMIT for a new read state and keeps the others', async () => {
  for (let c = 1; c <= 3; c++) expect((await call(s.url, 'POST', `/v1/users/9/read-states/${c}/mentions`, {})).status).toBe(200);
  const refused = await call(s.url, 'POST', '/v1/users/9/read-states/4/ack', { message_id: '5' });
  expect(refused.status).toBe(507);
  expect(refused.body).toMatchObject({ error: 'USER_READ_STATE_LIMIT', applied: false });
  expect((await call(s.url, 'GET', '/v1/users/9/read-states/4')).status).toBe(404);
  expect((await call(s.url, 'POST', '/v1/users/9/read-states/2/mentions', {})).status).toBe(200);
  const batch = await call(s.url, 'POST', '/v1/batch', {
    ops: [
      { op: 'mention', user_id: '9', channel_id: '5' },
      { op: 'mention', user_id: '9', channel_id: '1' },
    ],
  });
  expect(batch.status).toBe(200);
  expect((batch.body as { results: { status: number; error?: string; applied?: boolean | null }[] }).results.map((r) => [r.status, r.error, r.applied])).toEqual([
    [507, 'USER_READ_STATE_LIMIT', false],
    [200, undefined, undefined],
  ]);
  // After a delete there is room again.
  expect((await call(s.url, 'DELETE', '/v1/users/9/read-states/3')).status).toBe(204);
  expect((await call(s.url, 'POST', '/v1/users/9/read-states/4/ack', { message_id: '5' })).status).toBe(200);
  const all = await call(s.url, 'GET', '/v1/users/9/read-states');
  expect((all.body as { read_states: { channel_id: string }[] }).read_states.map((r) => r.channel_id)).toEqual(['1', '2', '4']);
});

it('fan-out: the cap refuses, duplicates count once, and a bad id names its index', async () => {
  for (let c = 1; c <= 3; c++) await call(s.url, 'POST', `/v1/users/21/read-states/${c}/mentions`, {});
  const capped = await call(s.url, 'POST', '/v1/channels/77/mentions', { message_id: '9', user_ids: ['21'] });
  expect(capped.status).toBe(507);
  expect(capped.body).toMatchObject({ error: 'USER_READ_STATE_LIMIT' });
  const dup = await call(s.url, 'POST', '/v1/channels/78/mentions', { message_id: '9', user_ids: ['22', '23', '22'] });
  expect(dup.body).toEqual({ updated: 2 });
  // A fan-out refused for one user of several: the others may have been applied.
  await call(s.url, 'POST', '/v1/users/26/read-states/1/mentions', {});
  await call(s.url, 'POST', '/v1/users/26/read-states/2/mentions', {});
  await call(s.url, 'POST', '/v1/users/26/read-states/3/mentions', {});
  const partial = await call(s.url, 'POST', '/v1/channels/79/mentions', { message_id: '9', user_ids: ['27', '26'] });
  expect(partial.status).toBe(507);
  expect(partial.body).toMatchObject({ error: 'USER_READ_STATE_LIMIT', applied: null });
  expect((await call(s.url, 'GET', '/v1/users/27/read-states/79')).status).toBe(200);
  const bad = await call(s.url, 'POST', '/v1/channels/78/mentions', { message_id: '9', user_ids: ['24', '24', '0', '25'] });
  expect(bad.status).toBe(400);
  expect((bad.body as { message: string }).message).toMatch(/^user_ids\[2\]/);
  // Nothing of a refused fan-out was applied.
  expect((await call(s.url, 'GET', '/v1/users/24/read-states/78')).status).toBe(404);
});
