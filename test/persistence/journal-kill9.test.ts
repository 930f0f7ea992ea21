/**
 * kill -9 loses nothing acknowledged: the service runs as a process with its default store
 * (SQLite) and flags, a client records every answer, the process is killed with SIGKILL at
 * different moments (right after a burst with nothing flushed yet, while flushes run, while a
 * shard worker is being replaced, with group commit on), restarted on the same --data-dir, and
 * every acknowledged read state is compared with the record.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { AckedRecord } from '../support/acked-record.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';

const dirs: string[] = [];
afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function start(dataDir: string, extra: string[] = []): Promise<ChildService> {
  const svc = new ChildService(await freePort(), ['--data-dir', dataDir, '--shards', '2', ...extra], { READ_STATES_FAULT_INJECTION: '1' });
  await svc.start();
  return svc;
}

/** Load for `ms`, run `during` meanwhile, then SIGKILL while requests are still in flight. */
async function loadAndKill(svc: ChildService, record: AckedRecord, userBase: number, ms: number, during?: () => Promise<void>): Promise<void> {
  let stop = false;
  const load = record.run(svc.url, { workers: 6, users: 300, channels: 6, userBase }, () => stop);
  await sleep(ms);
  if (during !== undefined) await during();
  const code = await svc.stop('SIGKILL');
  stop = true;
  await load;
  expect(code).toBe(null); // killed by the signal, not exited
}

async function restartAndVerify(dataDir: string, record: AckedRecord): Promise<ChildService> {
  const svc = await start(dataDir);
  const diffs = await record.verify(svc.url);
  expect(diffs.slice(0, 5)).toEqual([]);
  return svc;
}

it('acknowledged changes survive SIGKILL at several moments', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-kill9-'));
  dirs.push(dataDir);
  const record = new AckedRecord();

  // 1. Default flags (30 s flush delay): nothing has reached the store when the process dies.
  let svc = await start(dataDir);
  await loadAndKill(svc, record, 1, 1500);
  const afterFirst = record.acked;
  expect(afterFirst).toBeGreaterThan(500);
  svc = await restartAndVerify(dataDir, record);
  expect(svc.output).toMatch(/journal: \d+ changes from \d+ segments/);

  // 2. Continuous flushes (100 ms delay): the kill lands while store writes are in progress.
  await svc.stop('SIGTERM');
  // Small segments, so that segments are retired while the load runs and before the kill.
  svc = await start(dataDir, ['--flush-delay', '100', '--journal-segment-ms', '150']);
  await loadAndKill(svc, record, 1, 2500, async () => {
    const m = await (await fetch(`${svc.url}/metrics`)).text();
    expect(Number(/readstates_journal_segments_retired_total (\d+)/.exec(m)?.[1])).toBeGreaterThan(0);
  });
  svc = await restartAndVerify(dataDir, record);

  // 3. A shard worker dies and the process is killed while its replacement starts.
  await svc.stop('SIGTERM');
  svc = await start(dataDir, ['--flush-delay', '200', '--journal-segment-ms', '150']);
  await loadAndKill(svc, record, 1, 1200, async () => {
    const r = await fetch(`${svc.url}/v1/_faults/shards/1/kill`, { method: 'POST' });
    expect(r.status).toBe(202);
    await sleep(20);
  });
  svc = await restartAndVerify(dataDir, record);

  // 4. Group commit (fsync every 5 ms): answers wait for the fsync, and still nothing is lost.
  await svc.stop('SIGTERM');
  svc = await start(dataDir, ['--journal-fsync-ms', '5']);
  await loadAndKill(svc, record, 1, 1500);
  svc = await restartAndVerify(dataDir, record);

  // A clean stop leaves nothing to replay.
  expect(await svc.stop('SIGTERM')).toBe(0);
  const left = readdirSync(join(dataDir, 'journal', 'shard-0'));
  expect(left).toEqual([]);
  expect(record.acked).toBeGreaterThan(afterFirst * 2);
}, 180_000);
