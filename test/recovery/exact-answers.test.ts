/**
 * A shard worker that dies leaves a crash ledger (workers/crash-ledger.ts): the service answers
 * every op of the dying batch exactly. Ops it applied whole get their answer (a state read again,
 * 204, ...) and their changes are kept, although the batch's journal write and reply never
 * happened; the op it was inside gets 503 SHARD_UNAVAILABLE with applied null; the ops it had not
 * reached get 503 SHARD_RESTARTED with applied false, and indeed changed nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { RsWord, TOMB_PIN_HI } from '../../workers/protocol.js';
import { call } from '../support/http-client.js';
import { until } from '../support/until.js';
import { startService, type RunningService } from '../support/service.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});


async function service(store: MemoryStore): Promise<RunningService> {
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-exact-'));
  dirs.push(dataDir);
  return startService({ store: 'sqlite', dataDir, shards: 1, capacity: 64, maxUsers: 8, flushDelayMs: 3_600_000 }, store);
}

type Result = { status: number; error?: string; applied?: boolean | null; read_state?: { mention_count: number } };

function stored(rows: Uint32Array): Record<number, number> {
  const out: Record<number, number> = {};
  for (let at = 0; at < rows.length; at += RsWord.Size) if (rows[at + RsWord.PinHi] !== TOMB_PIN_HI) out[rows[at + RsWord.ChanLo]] = rows[at + RsWord.Mention];
  return out;
}

it('died after applying a batch, before its journal write and reply: applied ops answered and kept, the parked one not applied', async () => {
  const store = new MemoryStore();
  const s = await service(store);
  try {
    for (let i = 0; i < 2; i++) await call(s.url, 'POST', '/v1/users/101/read-states/1/mentions', {});
    await call(s.url, 'POST', '/v1/users/101/read-states/2/mentions', {});
    const lane = s.service.router.lanes[0];
    const restarts = lane.restarts;
    lane.exitAfterNextBatch();
    const r = await call(s.url, 'POST', '/v1/batch', {
      ops: [
        { op: 'mention', user_id: '101', channel_id: '1' },
        { op: 'delete', user_id: '101', channel_id: '2' },
        { op: 'mention', user_id: '555', channel_id: '1' }, // not cached: parked behind a load
        { op: 'get', user_id: '101', channel_id: '1' },
      ],
    });
    expect(r.status).toBe(200);
    const results = (r.body as { results: Result[] }).results;
    expect(results.map((x) => [x.status, x.error, x.applied, x.read_state?.mention_count])).toEqual([
      [200, undefined, undefined, 3],
      [204, undefined, undefined, undefined],
      [503, 'SHARD_RESTARTED', false, undefined],
      [200, undefined, undefined, 3],
    ]);
    expect(lane.restarts).toBe(restarts + 1);
    await until('/ready 200', async () => (await call(s.url, 'GET', '/ready')).status === 200);
    expect((await call(s.url, 'GET', '/v1/users/555/read-states/1')).status).toBe(404);
    // The batch's changes reach the store: its journal records came from the ledger.
    await until("the batch's changes in the store", async () => JSON.stringify(stored(await store.load(101, 0))) === JSON.stringify({ 1: 3 }));
  } finally {
    await s.close();
  }
});

it('died inside an op: the ops before it applied, that one "may have been", the rest not applied', async () => {
  const store = new MemoryStore();
  const s = await service(store);
  try {
    await call(s.url, 'POST', '/v1/users/7/read-states/1/mentions', {});
    const lane = s.service.router.lanes[0];
    lane.exitInSecondOpOfNextBatch();
    const r = await call(s.url, 'POST', '/v1/batch', {
      ops: [
        { op: 'mention', user_id: '7', channel_id: '1' },
        { op: 'mention', user_id: '7', channel_id: '1' },
        { op: 'mention', user_id: '7', channel_id: '1' },
      ],
    });
    const results = (r.body as { results: Result[] }).results;
    expect(results.map((x) => [x.status, x.error, x.applied, x.read_state?.mention_count])).toEqual([
      [200, undefined, undefined, 2],
      [503, 'SHARD_UNAVAILABLE', null, undefined],
      [503, 'SHARD_RESTARTED', false, undefined],
    ]);
    await until('/ready 200', async () => (await call(s.url, 'GET', '/ready')).status === 200);
    const now = await call(s.url, 'GET', '/v1/users/7/read-states/1');
    expect((now.body as { mention_count: number }).mention_count).toBe(2);
  } finally {
    await s.close();
  }
});
