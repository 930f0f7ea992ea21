/**
 * Idle collections, from outside: the service as a process with a short idle period
 * (READ_STATES_TEST_IDLE_CHECK_MS). After a burst of writes and their write-back, each thread
 * collects, and the HTTP thread then gives the freed heap back to the OS (a malloc trim holds
 * every arena's lock in turn) once the whole process is quiet: every thread's collection counts
 * as activity, so the trim comes after all of them. Traffic that keeps coming holds them off.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { call } from '../support/http-client.js';

interface Collections {
  count: number;
  maxSeconds: number;
  lastAtMs: number;
  trims: number;
  trimMaxSeconds: number;
  lastTrimAtMs: number;
}
type Stats = { threads: { thread: string; idleCollections: Collections }[] };

const dirs: string[] = [];
afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function collections(svc: ChildService): Promise<Map<string, Collections>> {
  const r = await call(svc.url, 'GET', '/v1/stats');
  expect(r.status).toBe(200);
  return new Map((r.body as Stats).threads.map((t) => [t.thread, t.idleCollections]));
}

it('each thread collects once idle, and the HTTP thread trims after all of them', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-idle-'));
  dirs.push(dataDir);
  const svc = new ChildService(await freePort(), ['--data-dir', dataDir, '--shards', '2', '--flush-delay', '50'], { READ_STATES_TEST_IDLE_CHECK_MS: '1000' });
  await svc.start();
  // Steady traffic (a request every 50 ms, far inside the 1 s period): nobody collects.
  const start = await collections(svc);
  for (let i = 0; i < 30; i++) {
    const ops = Array.from({ length: 200 }, (_, k) => ({ op: 'mention', user_id: String(1 + ((i * 200 + k) % 500)), channel_id: String(k + 1) }));
    expect((await call(svc.url, 'POST', '/v1/batch', { ops })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
  }
  const busy = await collections(svc);
  expect(busy.get('main')?.count).toBe(start.get('main')?.count);
  expect(busy.get('main')?.trims).toBe(start.get('main')?.trims);
  // Then quiet: every thread collects, and the HTTP thread's trim comes after every collection.
  let seen = busy;
  const settled = (m: Map<string, Collections>): boolean => {
    const main = m.get('main')!;
    return main.trims > busy.get('main')!.trims && [...m].every(([thread, c]) => c.count > busy.get(thread)!.count && c.lastAtMs <= main.lastTrimAtMs);
  };
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    seen = await collections(svc);
    if (settled(seen)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const main = seen.get('main')!;
  expect(main.trims).toBeGreaterThan(busy.get('main')!.trims);
  expect(main.trimMaxSeconds).toBeGreaterThan(0);
  for (const [thread, c] of seen) {
    expect(c.count, thread).toBeGreaterThan(busy.get(thread)!.count);
    expect(c.lastAtMs, `${thread} collected after the trim`).toBeLessThanOrEqual(main.lastTrimAtMs);
    if (thread !== 'main') expect(c.trims, `${thread} does not trim`).toBe(0);
  }
  // Quiet stays quiet: the collections and the trim do not set each other off again.
  await new Promise((r) => setTimeout(r, 3_500));
  const later = await collections(svc);
  for (const [thread, c] of later) {
    expect(c.count, thread).toBe(seen.get(thread)!.count);
    expect(c.trims, thread).toBe(seen.get(thread)!.trims);
  }
  // The service still answers, with what was written.
  const r = await call(svc.url, 'GET', '/v1/users/1/read-states/1');
  expect(r.status).toBe(200);
  await svc.stop('SIGTERM', 30_000);
}, 60_000);
