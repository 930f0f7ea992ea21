/**
 * A store thread that dies is replaced, and the replacement serves: it opens the store itself
 * (the main thread sent 'open' only to the first thread), and what was written before is there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { WorkerStore } from '../../src/store/worker-store.js';
import { unpackLoads } from '../../workers/store/load-many.js';
import { RecordKind, RsWord, StoredWord, TOMB_PIN_HI } from '../../workers/protocol.js';

let dir: string;
let store: WorkerStore;
beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rs-store-restart-'));
  store = new WorkerStore({ kind: 'sqlite', dataDir: dir, cassandra: loadConfig([], {}).cassandra });
  await store.open();
});
afterEach(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `channels` writes for one user: channel c gets mention count c + bump, written at ts. */
function writes(user: number, channels: number, bump: number, ts: number): Uint32Array {
  const r = new Uint32Array(channels * StoredWord.Size);
  for (let c = 1; c <= channels; c++) {
    const at = (c - 1) * StoredWord.Size;
    r[at + StoredWord.Kind] = RecordKind.Write;
    r[at + StoredWord.UserLo] = user;
    r[at + StoredWord.Rs + RsWord.ChanLo] = c;
    r[at + StoredWord.Rs + RsWord.Mention] = c + bump;
    r[at + StoredWord.TsLo] = ts;
  }
  return r;
}

/** channel -> mention count of a user as the store has it */
async function mentions(user: number): Promise<Map<number, number>> {
  const words = await store.load(user, 0);
  const out = new Map<number, number>();
  for (let at = 0; at < words.length; at += RsWord.Size) if (words[at + RsWord.PinHi] !== TOMB_PIN_HI) out.set(words[at + RsWord.ChanLo], words[at + RsWord.Mention]);
  return out;
}

it('after the store thread is killed, loads and writes succeed again and earlier data is still there', async () => {
  await store.apply(writes(1, 3, 0, 1000), 3);
  await store.apply(writes(2, 2, 10, 1000), 2);
  await store.killThread();
  expect(await mentions(1)).toEqual(new Map([[1, 1], [2, 2], [3, 3]]));
  expect(await mentions(2)).toEqual(new Map([[1, 11], [2, 12]]));
  await store.apply(writes(1, 1, 100, 2000), 1);
  expect((await mentions(1)).get(1)).toBe(101);
  // and again: every replacement opens the store, not only the first one
  await store.killThread();
  await store.apply(writes(3, 1, 0, 1000), 1);
  expect(await mentions(3)).toEqual(new Map([[1, 1]]));
  expect((await mentions(1)).get(1)).toBe(101);
});

it('a write in flight when the thread dies fails or lands whole, and the same write succeeds after', async () => {
  await store.apply(writes(5, 1, 0, 1000), 1);
  const big = writes(6, 20_000, 7, 1000);
  const inFlight = store.apply(big, 20_000).then(
    () => 'landed',
    () => 'failed',
  );
  // most likely inside the transaction (20,000 upserts take tens of ms); any moment must do
  await new Promise((r) => setTimeout(r, 20));
  await store.killThread();
  const outcome = await inFlight;
  const after = await mentions(6);
  // one transaction: all of it or none of it, and the dead connection holds no lock
  expect(after.size === 0 || after.size === 20_000, `${outcome}: ${after.size} rows`).toBe(true);
  const started = Date.now();
  await store.apply(big, 20_000);
  expect(Date.now() - started).toBeLessThan(4_000); // not waiting out a lock left behind (busy_timeout is 5 s)
  const again = await mentions(6);
  expect(again.size).toBe(20_000);
  expect(again.get(20_000)).toBe(20_007);
  expect(await mentions(5)).toEqual(new Map([[1, 1]]));
});

it('loadMany answers many users in one call, each as load() would (present and absent alike)', async () => {
  for (let u = 1; u <= 30; u += 2) await store.apply(writes(u, u % 7, u, 100), u % 7);
  const users = new Uint32Array(60);
  for (let u = 1; u <= 30; u++) users[(u - 1) * 2] = u;
  const many = unpackLoads(await store.loadMany(users), 30);
  for (let u = 1; u <= 30; u++) expect([...many[u - 1]], `user ${u}`).toEqual([...(await store.load(u, 0))]);
  expect(many[2].length / RsWord.Size).toBe(3); // user 3: 3 channels
  expect(many[1].length).toBe(0); // user 2: none stored
});
