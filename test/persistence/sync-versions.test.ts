/**
 * User versions and recent deletes survive eviction, a SIGTERM restart and kill -9 (the redo
 * journal) with the SQLite store, the service running as a process with a small cache.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { checkScenario, evictBy, writeScenario } from '../support/sync-scenario.js';

const dirs: string[] = [];
afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

it('sqlite: versions and deletes survive eviction, SIGTERM restart and SIGKILL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-sync-'));
  dirs.push(dir);
  // one shard with 8 user slots: 20 other users push a user out
  const args = ['--data-dir', dir, '--shards', '1', '--capacity', '64', '--max-users', '8'];
  let svc = new ChildService(await freePort(), args);
  await svc.start();

  // eviction with the write-behind's default delay (the evicted changes go to the store then)
  const evicted = await writeScenario(svc.url, '1001');
  await evictBy(svc.url, 20, 50_000);
  await checkScenario(svc.url, evicted);

  // a clean restart: everything is in SQLite
  const restarted = await writeScenario(svc.url, '1002');
  expect(await svc.stop('SIGTERM')).toBe(0);
  svc = new ChildService(await freePort(), args);
  await svc.start();
  await checkScenario(svc.url, restarted);

  // kill -9 right after the changes (30 s flush delay: the read states are only in the journal)
  const killed = await writeScenario(svc.url, '1003');
  expect(await svc.stop('SIGKILL')).toBe(null);
  svc = new ChildService(await freePort(), args);
  await svc.start();
  expect(svc.output).toMatch(/journal: \d+ changes from \d+ segments/);
  await checkScenario(svc.url, killed);

  // and eviction of a user loaded from the store after the restart
  const again = await writeScenario(svc.url, '1004');
  await evictBy(svc.url, 20, 60_000);
  await checkScenario(svc.url, again);
  expect(await svc.stop('SIGTERM')).toBe(0);
}, 120_000);
