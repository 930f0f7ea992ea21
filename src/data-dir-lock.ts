/**
 * One process per data dir. Two services on one SQLite file would each cache read states and
 * overwrite the other's writes, so the data dir carries a lock file naming its owner
 * ({pid, host, startedAt}). Node has no flock(2); the lock is the file's existence, created
 * exclusively. A lock whose process is gone (kill -9, power loss) is stale and taken over.
 */
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

export const LOCK_FILE = 'read-states.lock';

export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
}

/** Another live process owns the data dir; the message is the one line an operator needs. */
export class DataDirLockedError extends Error {
  constructor(
    readonly lockPath: string,
    readonly holder: LockHolder,
  ) {
    super(
      `data dir ${resolve(lockPath, '..')} is in use by pid ${holder.pid} on ${holder.host} since ${holder.startedAt} ` +
        `(lock file ${lockPath}); stop that process first, or delete the lock file if no read-states runs with that pid`,
    );
  }
}

export interface AcquiredLock {
  readonly path: string;
  /** the stale holder this process took the lock over from ('unreadable': a lock file that was not ours to parse), if any */
  readonly tookOverFrom: LockHolder | 'unreadable' | undefined;
  /** Removes the lock file if it is still ours; safe to call more than once and from an 'exit' handler. */
  release(): void;
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (typeof v.pid === 'number' && Number.isSafeInteger(v.pid) && v.pid > 0 && typeof v.host === 'string' && typeof v.startedAt === 'string') {
      return { pid: v.pid, host: v.host, startedAt: v.startedAt };
    }
  } catch {
    // not JSON: handled as unreadable below
  }
  return undefined;
}

/** 'absent' when the file vanished (its owner released it) between our attempt and the read. */
function readHolder(path: string): LockHolder | 'absent' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw err;
  }
  return parseHolder(text) ?? 'unreadable';
}

function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return a.pid === b.pid && a.host === b.host && a.startedAt === b.startedAt;
}

/**
 * Whether the holder provably still runs. Only a process on this host can be probed; signal 0
 * checks existence without delivering anything (EPERM: it exists but belongs to another user).
 * Our own pid in the file means a previous incarnation (a container restarts as pid 1 again).
 */
export function holderAlive(holder: LockHolder, host = hostname()): boolean {
  if (holder.host !== host || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Writes the holder to a private file first and then links it to the lock path: link(2) fails
 * if the path exists, like open(O_EXCL), and a reader never sees a half-written lock file.
 */
function tryCreate(path: string, me: LockHolder): boolean {
  const tmp = `${path}.${me.pid}.${process.hrtime.bigint()}.tmp`;
  const fd = openSync(tmp, 'wx');
  try {
    writeSync(fd, JSON.stringify(me) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}

/**
 * Replaces a stale lock. Two processes may find the same stale lock at once; a takeover file
 * created exclusively lets only one of them replace it, and the holder is read again under it,
 * so a fresh lock another process just created is never removed.
 */
function takeOver(path: string, stale: LockHolder | undefined, me: LockHolder, host: string): boolean {
  const guard = `${path}.takeover`;
  if (!tryCreate(guard, me)) {
    const other = readHolder(guard);
    if (other !== 'absent' && other !== 'unreadable' && holderAlive(other, host)) return false;
    // Its creator died mid-takeover: clear it and let the caller try again.
    unlinkQuiet(guard);
    return false;
  }
  try {
    const now = readHolder(path);
    const unchanged = now === 'unreadable' ? stale === undefined : now !== 'absent' && stale !== undefined && sameHolder(now, stale);
    if (now !== 'absent' && !unchanged) return false;
    unlinkQuiet(path);
    return tryCreate(path, me);
  } finally {
    unlinkQuiet(guard);
  }
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

const ATTEMPTS = 5;
/** Pause between attempts, so that a takeover in progress in another process can finish. */
const RETRY_PAUSE_MS = 50;

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Takes the data dir's lock (creating the directory), or throws DataDirLockedError naming the
 * live holder. Call before anything opens a file in the directory.
 */
export function acquireDataDirLock(dir: string, host = hostname()): AcquiredLock {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, host, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    if (attempt > 0) pause(RETRY_PAUSE_MS);
    if (tryCreate(path, me)) return ownedLock(path, me, undefined);
    const holder = readHolder(path);
    if (holder === 'absent') continue;
    if (holder !== 'unreadable' && holderAlive(holder, host)) throw new DataDirLockedError(path, holder);
    if (takeOver(path, holder === 'unreadable' ? undefined : holder, me, host)) return ownedLock(path, me, holder);
  }
  const holder = readHolder(path);
  if (holder !== 'absent' && holder !== 'unreadable') throw new DataDirLockedError(path, holder);
  throw new Error(`could not take the lock ${path} in ${ATTEMPTS} attempts: other processes keep taking it`);
}

function ownedLock(path: string, me: LockHolder, tookOverFrom: LockHolder | 'unreadable' | undefined): AcquiredLock {
  let released = false;
  return {
    path,
    tookOverFrom,
    release() {
      if (released) return;
      released = true;
      // Only our own lock: if someone deleted it by hand and another process took it, it is theirs.
      try {
        const now = readHolder(path);
        if (now !== 'absent' && now !== 'unreadable' && sameHolder(now, me)) unlinkQuiet(path);
      } catch {
        // Runs on the way out (an 'exit' handler): a lock left behind is stale and taken over next start.
      }
    },
  };
}
