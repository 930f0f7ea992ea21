/**
 * The store thread holds the write-behind: the records the shards posted and the store has not
 * confirmed live there. Killed with records pending (evictions of changed users: in no slab any
 * more) and loads in flight, the service replaces it, applies the shards' journals to the store
 * again before the new thread serves a load, asks again for the loads the dead thread had, and
 * loses no acknowledged change: every one reads back through the API and from the store itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { WorkerStore } from '../../src/store/worker-store.js';
import { RsWord, TOMB_PIN_HI } from '../../workers/protocol.js';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService | undefined;
const dirs: string[] = [];
afterEach(async () => {
  await s?.close();
  s = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const USERS = 4000;
const CHANNELS = 5;

/** One mention per read state of users [from, to), through /v1/batch (1,000 ops a request). */
async function mentionAll(url: string, from: number, to: number): Promise<void> {
  const ops: { op: string; user_id: string; channel_id: string }[] = [];
  for (let u = from; u < to; u++) for (let c = 1; c <= CHANNELS; c++) ops.push({ op: 'mention', user_id: String(u), channel_id: String(c) });
  for (let i = 0; i < ops.length; i += 1000) {
    const r = await call(url, 'POST', '/v1/batch', { ops: ops.slice(i, i + 1000) });
    expect(r.status).toBe(200);
    const results = (r.body as { results: { status: number }[] }).results;
    expect(results.every((x) => x.status === 200)).toBe(true);
  }
}

async function listed(url: string, user: number): Promise<{ status: number; counts: Record<string, number> }> {
  const r = await call(url, 'GET', `/v1/users/${user}/read-states`);
  const counts: Record<string, number> = {};
  if (r.status === 200) for (const rs of (r.body as { read_states: { channel_id: string; mention_count: number }[] }).read_states) counts[rs.channel_id] = rs.mention_count;
  return { status: r.status, counts };
}

function expected(n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let c = 1; c <= CHANNELS; c++) out[String(c)] = n;
  return out;
}

it('a store thread killed with records pending and loads in flight loses no acknowledged change', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-store-thread-'));
  dirs.push(dataDir);
  // 200 user slots for 4,000 users: nearly every user is evicted with its changes, which then
  // exist only in the store thread until SQLite confirms them.
  s = await startService({ store: 'sqlite', dataDir, capacity: 2000, maxUsers: 200, flushDelayMs: 60_000 });
  const link = s.service.writeBehind as WorkerStore;
  await mentionAll(s.url, 1, USERS + 1);
  // Loads in flight when the thread dies: users evicted a moment ago, asked for again.
  const inFlight = Promise.all(Array.from({ length: 40 }, (_, i) => listed(s!.url, i + 1)));
  await link.killThread();
  const during = await inFlight;
  for (const [i, r] of during.entries()) {
    // answered, either from the store (journal applied again first) or with a retryable 503
    expect([200, 503], `user ${i + 1}`).toContain(r.status);
    if (r.status === 200) expect(r.counts, `user ${i + 1}`).toEqual(expected(1));
  }
  // a second round on part of the users, after the replacement
  await mentionAll(s.url, 1, 501);
  await s.service.router.flushAll();
  expect(await link.drain(20_000)).toBe(true);
  for (let u = 1; u <= USERS; u += 7) {
    const r = await listed(s.url, u);
    expect(r.status, `user ${u}`).toBe(200);
    expect(r.counts, `user ${u}`).toEqual(expected(u <= 500 ? 2 : 1));
  }
  expect((await call(s.url, 'GET', '/ready')).status).toBe(200);
  expect(await s.service.close()).toBe(0);
  s = undefined;

  // Straight from the store, every user.
  const store = new WorkerStore({ kind: 'sqlite', dataDir, cassandra: loadConfig([], {}).cassandra });
  await store.open();
  try {
    for (let u = 1; u <= USERS; u++) {
      const words = await store.load(u, 0);
      const counts: Record<string, number> = {};
      for (let at = 0; at < words.length; at += RsWord.Size) if (words[at + RsWord.PinHi] !== TOMB_PIN_HI) counts[String(words[at + RsWord.ChanLo])] = words[at + RsWord.Mention];
      expect(counts, `user ${u} in the store`).toEqual(expected(u <= 500 ? 2 : 1));
    }
  } finally {
    await store.close();
  }
}, 120_000);
