/**
 * A wall clock an hour behind (an NTP step, a VM restored from a snapshot) loses nothing: an ack
 * and a delete answered while the clock was behind survive a clean restart with the right clock,
 * although the rows they replace were written with timestamps an hour later.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { call } from '../support/http-client.js';

const dataDir = mkdtempSync(join(tmpdir(), 'rs-clock-step-'));
afterAll(async () => {
  await stopAllChildren();
  rmSync(dataDir, { recursive: true, force: true });
});

async function run(skewMs: number, body: (url: string) => Promise<void>): Promise<void> {
  const svc = new ChildService(await freePort(), ['--data-dir', dataDir, '--shards', '2'], { READ_STATES_FAULT_CLOCK_SKEW_MS: String(skewMs) });
  await svc.start();
  await body(svc.url);
  expect(await svc.stop('SIGTERM')).toBe(0);
}

it('changes made while the clock is an hour behind win over older rows written with the right clock', async () => {
  await run(0, async (url) => {
    expect((await call(url, 'POST', '/v1/users/7/read-states/1/ack', { message_id: '10' })).status).toBe(200);
    expect((await call(url, 'POST', '/v1/users/7/read-states/2/ack', { message_id: '5' })).status).toBe(200);
  });
  await run(-3_600_000, async (url) => {
    expect((await call(url, 'POST', '/v1/users/7/read-states/1/ack', { message_id: '20' })).status).toBe(200);
    expect((await call(url, 'DELETE', '/v1/users/7/read-states/2')).status).toBe(204);
  });
  await run(0, async (url) => {
    const one = await call(url, 'GET', '/v1/users/7/read-states/1');
    expect(one.status).toBe(200);
    expect((one.body as { last_message_id: string }).last_message_id).toBe('20');
    expect((await call(url, 'GET', '/v1/users/7/read-states/2')).status).toBe(404);
  });
}, 120_000);
