import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireDataDirLock, DataDirLockedError, holderAlive, LOCK_FILE } from '../../src/data-dir-lock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rs-lock-unit-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const lockPath = (): string => join(dir, LOCK_FILE);
const writeLock = (holder: unknown): void => writeFileSync(lockPath(), typeof holder === 'string' ? holder : JSON.stringify(holder));

/** A pid that ran and has exited (the child is reaped, so nothing answers it). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('data dir lock', () => {
  it('creates the directory and a lock file naming this process, and release removes it', () => {
    const sub = join(dir, 'a', 'b');
    const lock = acquireDataDirLock(sub);
    const holder = JSON.parse(readFileSync(join(sub, LOCK_FILE), 'utf8'));
    expect(holder.pid).toBe(process.pid);
    expect(holder.host).toBe(hostname());
    expect(Number.isNaN(Date.parse(holder.startedAt))).toBe(false);
    expect(lock.tookOverFrom).toBeUndefined();
    lock.release();
    lock.release();
    expect(readdirSync(sub)).toEqual([]);
  });

  it('refuses a lock held by a live process on this host, naming pid, start and path', () => {
    const holder = { pid: process.ppid, host: hostname(), startedAt: '2026-01-02T03:04:05.000Z' };
    writeLock(holder);
    let err: unknown;
    try {
      acquireDataDirLock(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataDirLockedError);
    const message = (err as Error).message;
    expect(message).toContain(`pid ${process.ppid}`);
    expect(message).toContain('since 2026-01-02T03:04:05.000Z');
    expect(message).toContain(lockPath());
    expect(message).not.toContain('\n');
    // the holder's lock is untouched
    expect(JSON.parse(readFileSync(lockPath(), 'utf8'))).toEqual(holder);
  });

  it.each([
    ['a dead pid', () => ({ pid: deadPid(), host: hostname(), startedAt: 'x' })],
    ['this pid (a previous incarnation)', () => ({ pid: process.pid, host: hostname(), startedAt: 'x' })],
    ['another host', () => ({ pid: process.ppid, host: hostname() + '-elsewhere', startedAt: 'x' })],
  ])('takes over a stale lock: %s', (_what, make) => {
    const stale = make();
    writeLock(stale);
    const lock = acquireDataDirLock(dir);
    expect(lock.tookOverFrom).toEqual(stale);
    expect(JSON.parse(readFileSync(lockPath(), 'utf8')).pid).toBe(process.pid);
    lock.release();
    expect(existsSync(lockPath())).toBe(false);
  });

  it('takes over a lock file that is not a lock (garbage, empty)', () => {
    for (const text of ['not json', '']) {
      writeLock(text);
      const lock = acquireDataDirLock(dir);
      expect(lock.tookOverFrom).toBe('unreadable');
      lock.release();
    }
  });

  it('release leaves a lock that another process took meanwhile', () => {
    const lock = acquireDataDirLock(dir);
    const other = { pid: process.ppid, host: hostname(), startedAt: 'y' };
    writeLock(other);
    lock.release();
    expect(JSON.parse(readFileSync(lockPath(), 'utf8'))).toEqual(other);
  });

  it('holderAlive: a live pid on this host; not a dead one, nor this process itself', () => {
    expect(holderAlive({ pid: process.ppid, host: hostname(), startedAt: '' })).toBe(true);
    expect(holderAlive({ pid: deadPid(), host: hostname(), startedAt: '' })).toBe(false);
    expect(holderAlive({ pid: process.pid, host: hostname(), startedAt: '' })).toBe(false);
  });

  it('leaves no temporary files behind', () => {
    writeLock({ pid: deadPid(), host: hostname(), startedAt: 'x' });
    const lock = acquireDataDirLock(dir);
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    lock.release();
  });
});
