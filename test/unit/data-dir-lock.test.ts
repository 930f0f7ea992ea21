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

describe('data dir lock, several processes at once', () => {
  it('exactly one of six processes racing for a stale lock gets it', async () => {
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const lockModule = fileURLToPath(new URL('../../dist/src/data-dir-lock.js', import.meta.url));
    writeLock({ pid: deadPid(), host: hostname(), startedAt: 'x' });
    // Each child starts, says 'ready', waits for 'go' (so that all try at the same moment), tries
    // once, says what happened, and holds whatever it got until its stdin closes.
    const script = `
      import { acquireDataDirLock, DataDirLockedError } from ${JSON.stringify(lockModule)};
      process.stdout.write('ready\\n');
      process.stdin.once('data', () => {
        let line;
        try { acquireDataDirLock(${JSON.stringify(dir)}); line = 'acquired'; }
        catch (e) { line = e instanceof DataDirLockedError ? 'locked' : 'error ' + e.message; }
        process.stdout.write(line + '\\n');
        process.stdin.on('end', () => process.exit(0));
      });`;
    const children = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const outputs = children.map(() => '');
    const said = (i: number, what: RegExp): Promise<string> =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          const m = what.exec(outputs[i]);
          if (m !== null) resolve(m[1]);
          return m !== null;
        };
        if (check()) return;
        const onData = (): void => {
          if (check()) children[i].stdout!.off('data', onData);
        };
        children[i].stdout!.on('data', onData);
        children[i].once('exit', (code) => reject(new Error(`child exited ${code}: ${outputs[i]}`)));
      });
    children.forEach((c, i) => c.stdout!.on('data', (d: Buffer) => (outputs[i] += d.toString())));
    try {
      await Promise.all(children.map((_, i) => said(i, /^(ready)\n/)));
      for (const c of children) c.stdin!.write('go\n');
      const lines = await Promise.all(children.map((_, i) => said(i, /^ready\n(.+)\n/)));
      expect(lines.filter((l) => l === 'acquired'), lines.join(', ')).toHaveLength(1);
      expect(lines.filter((l) => l !== 'acquired' && l !== 'locked'), lines.join(', ')).toEqual([]);
      const winner = children[lines.indexOf('acquired')].pid;
      expect(JSON.parse(readFileSync(lockPath(), 'utf8')).pid).toBe(winner);
      expect(readdirSync(dir).sort()).toEqual([LOCK_FILE]);
    } finally {
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : (c.once('exit', r), c.stdin!.end())))));
    }
  }, 60_000);
});
