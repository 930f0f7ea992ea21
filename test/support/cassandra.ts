/**
 * A real Cassandra for tests. ensureCassandra() uses the one answering CQL on 127.0.0.1:9042
 * (CASSANDRA_PORT overrides the port, as for test/cassandra/cassandra.sh), or starts one with
 * `bash test/cassandra/cassandra.sh start` (30-70 s on a fresh machine, more if the jars must be
 * fetched first: give the hook 240 s). stopCassandraIfStarted() (afterAll) stops a Cassandra that
 * tests started, once no other test file still uses it; a Cassandra someone started by hand is
 * never stopped.
 *
 * Several test files (processes or threads) may call these at once, so they coordinate through
 * .cassandra/ (git-ignored, the script's own directory):
 * - tests.lock/        a mkdir lock around probe+start and around stop;
 * - test-leases/<id>   one file per ensureCassandra() caller still using the server (with its pid,
 *                      so leases of crashed processes are ignored);
 * - started-by-tests   the pid of the Cassandra that a test started: whoever drops the last lease
 *                      stops it, even if another file started it. A run killed before its afterAll
 *                      leaves it running; the next test run uses it and stops it at the end.
 * - exclusive.lock/    held by a test that disturbs the server (SIGSTOP) and by tests that cannot
 *                      bear that (cluster leases): see holdCassandraExclusive().
 *
 * No Cassandra and no way to start one is an error, never a silent skip (CI=true says so too).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import cassandra from 'cassandra-driver';

export const CASSANDRA_HOST = '127.0.0.1';
export const CASSANDRA_PORT = Number(process.env.CASSANDRA_PORT ?? 9042);
export const CASSANDRA_DC = 'datacenter1';
/** Give beforeAll/afterAll hooks that call into this module this long. */
export const CASSANDRA_HOOK_TIMEOUT_MS = 240_000;

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'test', 'cassandra', 'cassandra.sh');
const CASS_DIR = join(ROOT, '.cassandra');
const LOCK_DIR = join(CASS_DIR, 'tests.lock');
const LEASE_DIR = join(CASS_DIR, 'test-leases');
const MARKER = join(CASS_DIR, 'started-by-tests');
const PID_FILE = join(CASS_DIR, 'cassandra.pid');
const EXCLUSIVE_DIR = join(CASS_DIR, 'exclusive.lock');

export interface CassandraEndpoint {
  contactPoint: string;
  port: number;
  startedHere: boolean;
}

let lease: string | undefined;
let startedHere = false;

/** The release_version if a CQL query answers on host:port within timeoutMs, else undefined. */
export async function cqlVersion(host = CASSANDRA_HOST, port = CASSANDRA_PORT, timeoutMs = 3000): Promise<string | undefined> {
  const client = new cassandra.Client({
    contactPoints: [host],
    localDataCenter: CASSANDRA_DC,
    protocolOptions: { port },
    socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
    policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(60_000) },
    pooling: { warmup: false },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const probe = (async () => {
      await client.connect();
      const rs = await client.execute('SELECT release_version FROM system.local');
      return String(rs.first()?.['release_version'] ?? '');
    })();
    probe.catch(() => {});
    const guard = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), 2 * timeoutMs);
    });
    return await Promise.race([probe, guard]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    await client.shutdown().catch(() => {});
  }
}

export async function ensureCassandra(): Promise<CassandraEndpoint> {
  const endpoint = { contactPoint: CASSANDRA_HOST, port: CASSANDRA_PORT };
  await withLock(async () => {
    if (lease === undefined) {
      mkdirSync(LEASE_DIR, { recursive: true });
      lease = join(LEASE_DIR, `${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(lease, String(process.pid));
    }
    if ((await cqlVersion()) !== undefined) return;
    const run = await script('start', 230_000);
    if (run.code === 0 && (await cqlVersion(CASSANDRA_HOST, CASSANDRA_PORT, 5000)) !== undefined) {
      startedHere = true;
      const pid = cassandraPid();
      if (pid !== undefined) writeFileSync(MARKER, String(pid));
      return;
    }
    // The script may leave a node it launched running (start timeout): do not leak it.
    if (cassandraPid() !== undefined) await script('stop', 90_000);
    dropLease();
    const why =
      `Cassandra does not answer CQL on ${CASSANDRA_HOST}:${CASSANDRA_PORT} and ` +
      `\`bash test/cassandra/cassandra.sh start\` failed (${run.code === null ? 'timed out' : `exit ${run.code}`}).\n` +
      `Its output (last lines):\n${tail(run.output, 40)}\n` +
      'These tests need a real Cassandra: fix the error above, or start one (npm run cassandra:start) and rerun.';
    throw new Error(process.env.CI === 'true' ? `CI=true: a missing Cassandra is a test failure. ${why}` : why);
  });
  return { ...endpoint, startedHere };
}

/**
 * Drops this caller's lease; stops the Cassandra if a test started it and no other test file
 * still holds a lease. Resolves to whether it stopped one.
 */
export async function stopCassandraIfStarted(): Promise<boolean> {
  if (lease === undefined) return false;
  return withLock(async () => {
    dropLease();
    if (liveLeases().length > 0) return false;
    if (!existsSync(MARKER)) return false;
    const marked = Number(readFileSync(MARKER, 'utf8').trim());
    const pid = cassandraPid();
    rmSync(MARKER, { force: true });
    if (pid === undefined || pid !== marked) return false; // someone restarted it by hand since
    const run = await script('stop', 90_000);
    if (run.code !== 0) throw new Error(`cassandra.sh stop failed (${run.code}):\n${tail(run.output, 20)}`);
    startedHere = false;
    return true;
  });
}

/**
 * For tests that cannot share the Cassandra with a test that disturbs it: the store-outage test
 * stops the process (SIGSTOP), and cluster tests, whose leases live in Cassandra, would read that
 * as every instance losing its lease. Both hold this (a mkdir lock in .cassandra/, taken over from
 * a dead holder) around what must not overlap; other test files go on meanwhile. Resolves to the
 * release function.
 */
export async function holdCassandraExclusive(timeoutMs = 600_000): Promise<() => void> {
  mkdirSync(CASS_DIR, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(EXCLUSIVE_DIR);
      writeFileSync(join(EXCLUSIVE_DIR, 'owner'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(EXCLUSIVE_DIR, 'owner'), 'utf8').trim());
      } catch {
        // being created or removed right now
      }
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        rmSync(EXCLUSIVE_DIR, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${EXCLUSIVE_DIR} (held by pid ${owner}); remove it if stale`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  let held = true;
  return () => {
    if (held) rmSync(EXCLUSIVE_DIR, { recursive: true, force: true });
    held = false;
  };
}

function dropLease(): void {
  if (lease !== undefined) rmSync(lease, { force: true });
  lease = undefined;
}

/** Leases of processes still alive (stale ones are removed). */
function liveLeases(): string[] {
  if (!existsSync(LEASE_DIR)) return [];
  const live: string[] = [];
  for (const name of readdirSync(LEASE_DIR)) {
    const pid = Number(name.split('-')[0]);
    if (alive(pid)) live.push(name);
    else rmSync(join(LEASE_DIR, name), { force: true });
  }
  return live;
}

/** The pid of the Cassandra the script started, if it is alive. */
function cassandraPid(): number | undefined {
  if (!existsSync(PID_FILE)) return undefined;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  return alive(pid) ? pid : undefined;
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function script(cmd: 'start' | 'stop', timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile('bash', [SCRIPT, cmd], { cwd: ROOT, env: process.env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** A mkdir lock in .cassandra/ shared by test processes; a dead holder's lock is taken over. */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(CASS_DIR, { recursive: true });
  const deadline = Date.now() + 300_000;
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      writeFileSync(join(LOCK_DIR, 'owner'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(LOCK_DIR, 'owner'), 'utf8').trim());
      } catch {
        // being created or removed right now
      }
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        rmSync(LOCK_DIR, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${LOCK_DIR} (held by pid ${owner}); remove it if stale`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK_DIR, { recursive: true, force: true });
  }
}
