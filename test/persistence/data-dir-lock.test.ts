/**
 * One process per data dir, over real processes: a second service on a data dir in use exits 1
 * naming the owner, the owner keeps serving, and after the owner is killed -9 its stale lock is
 * taken over by the next start.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { LOCK_FILE } from '../../src/data-dir-lock.js';
import { call } from '../support/http-client.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';

afterAll(async () => {
  await stopAllChildren();
});

it('a second process on the data dir exits 1 naming the holder; a stale lock is taken over', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-lock-'));
  const lockPath = join(dir, LOCK_FILE);
  const args = ['--shards', '1', '--capacity', '1000', '--data-dir', dir];
  try {
    const first = new ChildService(await freePort(), args);
    await first.start();
    expect(JSON.parse(readFileSync(lockPath, 'utf8')).pid).toBe(first.pid);
    expect((await call(first.url, 'POST', '/v1/users/3/read-states/4/ack', { message_id: '10' })).status).toBe(200);

    const second = new ChildService(await freePort(), args);
    second.spawn();
    expect(await second.exited(60_000), second.output).toBe(1);
    const message = second.stderr.trim();
    expect(message.split('\n'), message).toHaveLength(1);
    expect(message).toContain(`pid ${first.pid}`);
    expect(message).toContain(lockPath);
    expect(message).toMatch(/since \d{4}-\d\d-\d\dT/);

    // The first is untouched: its lock is still there and it still serves reads and writes.
    expect(JSON.parse(readFileSync(lockPath, 'utf8')).pid).toBe(first.pid);
    expect((await fetch(first.url + '/ready')).status).toBe(200);
    expect((await call(first.url, 'POST', '/v1/users/3/read-states/4/ack', { message_id: '11' })).status).toBe(200);

    // kill -9 leaves the lock file behind, naming a process that no longer runs.
    await first.stop('SIGKILL');
    expect(existsSync(lockPath)).toBe(true);
    const third = new ChildService(await freePort(), args);
    await third.start();
    expect(JSON.parse(readFileSync(lockPath, 'utf8')).pid).toBe(third.pid);
    expect(third.output).toContain('took over a stale data-dir lock');
    expect(third.output).toContain(`"pid":${first.pid}`);
    expect(await third.stop('SIGTERM')).toBe(0);
    // A clean exit releases it.
    expect(existsSync(lockPath)).toBe(false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);

it('a start-up that fails after taking the lock (port in use) exits 1 and releases it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-lock-'));
  const port = await freePort();
  const squatter = createServer();
  await new Promise<void>((r) => squatter.listen(port, '127.0.0.1', () => r()));
  try {
    const svc = new ChildService(port, ['--shards', '1', '--capacity', '1000', '--data-dir', dir]);
    svc.spawn();
    expect(await svc.exited(60_000), svc.output).toBe(1);
    expect(svc.output).toContain('EADDRINUSE');
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  } finally {
    await new Promise((r) => squatter.close(r));
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
