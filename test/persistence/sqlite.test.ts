/**
 * The embedded default store end to end: real processes, real files, real signals.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { restartUnderLoad } from './restart-under-load.js';

const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'read-states-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('sqlite store (default)', () => {
  it('keeps every acknowledged change across a SIGTERM restart under load', async () => {
    const svc = new ChildService(await freePort(), ['--data-dir', dataDir(), '--shards', '2', '--flush-delay', '30000']);
    await restartUnderLoad(svc, 'sqlite');
  });

  it('writes after the flush delay without a restart, and survives SIGKILL after that', async () => {
    const dir = dataDir();
    const svc = new ChildService(await freePort(), ['--data-dir', dir, '--shards', '1', '--flush-delay', '200']);
    await svc.start();
    const r = await call(svc.url, 'POST', '/v1/users/9/read-states/18446744073709551615/ack', { message_id: '9223372036854775808', mention_count: 4 });
    expect(r.status).toBe(200);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const stats = (await call(svc.url, 'GET', '/v1/stats')).body as { store: { written: number; pending: number } };
      if (stats.store.written >= 1 && stats.store.pending === 0) break;
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(await svc.stop('SIGKILL')).toBe(null);
    await svc.start();
    const version = (r.body as { version: number }).version;
    expect((await call(svc.url, 'GET', '/v1/users/9/read-states')).body).toEqual({
      user_id: '9',
      version,
      full: true,
      read_states: [
        { user_id: '9', channel_id: '18446744073709551615', last_message_id: '9223372036854775808', mention_count: 4, last_pin_timestamp: 0, flags: 0, version },
      ],
    });
    expect(await svc.stop()).toBe(0);
  });

  it('cycles thousands of users through a tiny cache with all state intact', async () => {
    const svc = new ChildService(await freePort(), ['--data-dir', dataDir(), '--shards', '2', '--capacity', '64', '--max-users', '16', '--flush-delay', '50']);
    await svc.start();
    const users = 2000;
    for (let base = 1; base <= users; base += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const u = base + i;
          expect((await call(svc.url, 'POST', `/v1/users/${u}/read-states/1/ack`, { message_id: String(u * 10), mention_count: u % 7 })).status).toBe(200);
          expect((await call(svc.url, 'POST', `/v1/users/${u}/read-states/2/mentions`, { count: 1 + (u % 5) })).status).toBe(200);
        }),
      );
    }
    for (let base = 1; base <= users; base += 100) {
      await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const u = base + i;
          const body = (await call(svc.url, 'GET', `/v1/users/${u}/read-states`)).body as { read_states: { channel_id: string; last_message_id: string; mention_count: number }[] };
          expect(body.read_states.map((s) => [s.channel_id, s.last_message_id, s.mention_count])).toEqual([
            ['1', String(u * 10), u % 7],
            ['2', '0', 1 + (u % 5)],
          ]);
        }),
      );
    }
    const stats = (await call(svc.url, 'GET', '/v1/stats')).body as { shards: { evictions: number; loads: number }[] };
    expect(stats.shards.reduce((a, s) => a + s.evictions, 0)).toBeGreaterThan(1000);
    expect(await svc.stop()).toBe(0);
  });
});
