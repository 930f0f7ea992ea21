/**
 * The service with SQLite on its store thread, and that thread killed: writes acknowledged
 * before and after still reach the store (the write-behind retries what failed with the thread),
 * users are loaded from the store again, and /ready comes back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { WorkerStore } from '../../src/store/worker-store.js';
import { RecordKind, RsWord, StoredWord, TOMB_PIN_HI } from '../../workers/protocol.js';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService | undefined;
let dir: string | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function storedMentions(store: WorkerStore, user: number): Promise<Record<number, number>> {
  const words = await store.load(user, 0);
  const out: Record<number, number> = {};
  for (let at = 0; at < words.length; at += RsWord.Size) if (words[at + RsWord.PinHi] !== TOMB_PIN_HI) out[words[at + RsWord.ChanLo]] = words[at + RsWord.Mention];
  return out;
}

it('acknowledged writes reach the store after the store thread was killed', async () => {
  dir = mkdtempSync(join(tmpdir(), 'rs-store-crash-'));
  const store = new WorkerStore({ kind: 'sqlite', dataDir: dir, cassandra: loadConfig([], {}).cassandra });
  await store.open();
  // user 9 exists only in the store: the service has to load it
  const seed = new Uint32Array(StoredWord.Size);
  seed[StoredWord.Kind] = RecordKind.Write;
  seed[StoredWord.UserLo] = 9;
  seed[StoredWord.Rs + RsWord.ChanLo] = 1;
  seed[StoredWord.Rs + RsWord.Mention] = 4;
  seed[StoredWord.TsLo] = 1;
  await store.apply(seed, 1);
  s = await startService({ shards: 2, capacity: 1000, maxUsers: 100, flushDelayMs: 20 }, store);
  const mention = async (u: number, c: number): Promise<void> => {
    expect((await call(s!.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {})).status).toBe(200);
  };
  for (let u = 1; u <= 5; u++) await mention(u, 1);
  await s.service.router.flushAll();
  expect(await s.service.writeBehind.drain(10_000)).toBe(true);

  // Acknowledged changes on their way to the store when its thread dies.
  for (let u = 1; u <= 5; u++) await mention(u, 2);
  await store.killThread();
  for (let u = 1; u <= 5; u++) await mention(u, 3);
  await s.service.router.flushAll();
  expect(await s.service.writeBehind.drain(10_000)).toBe(true);
  for (let u = 1; u <= 5; u++) expect(await storedMentions(store, u), `user ${u}`).toEqual({ 1: 1, 2: 1, 3: 1 });

  // Loads work again: user 9 comes from the store, and a change to it lands there too.
  const r = await call(s.url, 'GET', '/v1/users/9/read-states/1');
  expect(r.status).toBe(200);
  expect(r.body).toMatchObject({ mention_count: 4 });
  await mention(9, 1);
  await s.service.router.flushAll();
  expect(await s.service.writeBehind.drain(10_000)).toBe(true);
  expect(await storedMentions(store, 9)).toEqual({ 1: 5 });
  expect((await call(s.url, 'GET', '/ready')).status).toBe(200);
});
