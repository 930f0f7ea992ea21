/**
 * The service on a real Apache Cassandra (started from Maven Central by test/cassandra/cassandra.sh
 * when none answers): write-behind lands in the table, restarts lose nothing acknowledged, and an
 * outage of the store loses nothing either.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, holdCassandraExclusive, stopCassandraIfStarted } from '../support/cassandra.js';
import { restartUnderLoad } from './restart-under-load.js';
import { AckedRecord } from '../support/acked-record.js';

const keyspace = `rs_test_${randomBytes(4).toString('hex')}`;
let client: cassandra.Client;
let port = 9042;

beforeAll(async () => {
  const endpoint = await ensureCassandra();
  port = endpoint.port;
  client = new cassandra.Client({ contactPoints: [endpoint.contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port } });
  await client.connect();
}, CASSANDRA_HOOK_TIMEOUT_MS);

// Each service gets a data dir of its own (its journal and lock live there), never the repo's ./data.
const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'rs-cassandra-'));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client?.shutdown();
  await stopCassandraIfStarted();
}, CASSANDRA_HOOK_TIMEOUT_MS);

function args(extra: string[], dir = dataDir()): string[] {
  return ['--store', 'cassandra', '--cassandra-keyspace', keyspace, '--cassandra-port', String(port), '--shards', '2', '--data-dir', dir, ...extra];
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('cassandra store', () => {
  it('writes a change after the flush delay: the row is in Cassandra', async () => {
    const svc = new ChildService(await freePort(), args(['--flush-delay', '300']));
    await svc.start(120_000);
    try {
      const user = '18446744073709551615';
      const channel = '9223372036854775808';
      const r = await call(svc.url, 'POST', `/v1/users/${user}/read-states/${channel}/ack`, { message_id: '9223372036854775807', mention_count: 3 });
      expect(r.status).toBe(200);
      await waitFor('the row', async () => {
        const rs = await client.execute(`SELECT * FROM ${keyspace}.read_states WHERE user_id = ?`, [cassandra.types.Long.fromString('-1')], { prepare: true });
        return rs.rowLength === 1;
      });
      const row = (await client.execute(`SELECT * FROM ${keyspace}.read_states WHERE user_id = ?`, [cassandra.types.Long.fromString('-1')], { prepare: true })).first();
      // u64 ids are stored as signed bigint: 2^64-1 -> -1, 2^63 -> -2^63, 2^63-1 stays
      expect(row['channel_id'].toString()).toBe('-9223372036854775808');
      expect(row['last_message_id'].toString()).toBe('9223372036854775807');
      expect(row['mention_count']).toBe(3);
      // the version is the change's timestamp, as the answer said
      expect(row['version'].toString()).toBe(String((r.body as { version: number }).version));
      expect(row['deleted']).toBe(false);
      const ts = await client.execute(`SELECT WRITETIME(mention_count) AS wt FROM ${keyspace}.read_states WHERE user_id = ?`, [cassandra.types.Long.fromString('-1')], { prepare: true });
      expect(Number(ts.first()['wt'].toString())).toBeGreaterThan(Date.now() * 1000 - 600e6);
    } finally {
      expect(await svc.stop()).toBe(0);
    }
  });

  it('kill -9 under load loses nothing acknowledged: the journal is applied to Cassandra at the next start', async () => {
    const dir = dataDir();
    const record = new AckedRecord();
    let svc = new ChildService(await freePort(), args([], dir));
    await svc.start(120_000);
    let stop = false;
    const load = record.run(svc.url, { workers: 4, users: 200, channels: 4, userBase: 5_000_000 }, () => stop);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await svc.stop('SIGKILL')).toBe(null);
    stop = true;
    await load;
    expect(record.acked).toBeGreaterThan(200);
    svc = new ChildService(await freePort(), args([], dir));
    await svc.start(120_000);
    expect(svc.output).toMatch(/journal: \d+ changes from \d+ segments/);
    expect((await record.verify(svc.url)).slice(0, 5)).toEqual([]);
    expect(await svc.stop('SIGTERM', 120_000)).toBe(0);
    // Straight from Cassandra after the clean stop: one acknowledged read state, row for row.
    const [key, e] = [...record.expected].find(([k, v]) => !record.uncertain.has(k) && !v.deleted)!;
    const [u, c] = key.split('/');
    const rs = await client.execute(`SELECT last_message_id, mention_count FROM ${keyspace}.read_states WHERE user_id = ? AND channel_id = ?`, [cassandra.types.Long.fromString(u), cassandra.types.Long.fromString(c)], { prepare: true });
    expect([rs.first()?.['last_message_id'].toString(), rs.first()?.['mention_count']]).toEqual([e.lastMessageId, e.mentionCount]);
  }, 300_000);

  it('keeps every acknowledged change across a SIGTERM restart under load', async () => {
    await restartUnderLoad(new ChildService(await freePort(), args(['--flush-delay', '30000'])), 'cassandra');
  });

  it('a store outage (Cassandra stopped with SIGSTOP) loses nothing; /ready tells the truth meanwhile', async () => {
    const pid = Number(readFileSync('.cassandra/cassandra.pid', 'utf8').trim());
    expect(pid).toBeGreaterThan(0);
    const svc = new ChildService(await freePort(), args(['--flush-delay', '100', '--capacity', '2000', '--max-users', '200']));
    await svc.start(120_000);
    const acked = new Map<string, number>();
    let stopped = false;
    // Cluster tests running meanwhile in another file would lose their leases to this outage.
    const release = await holdCassandraExclusive();
    try {
      for (let u = 1; u <= 50; u++) {
        const r = await call(svc.url, 'POST', `/v1/users/${u}/read-states/1/ack`, { message_id: String(1000 + u) });
        expect(r.status).toBe(200);
        acked.set(`${u}/1`, 1000 + u);
      }
      process.kill(pid, 'SIGSTOP');
      stopped = true;
      // Keep writing while the store cannot answer: cached users keep working.
      for (let round = 0; round < 3; round++) {
        for (let u = 1; u <= 50; u++) {
          const message = 2000 + round * 100 + u;
          const r = await call(svc.url, 'POST', `/v1/users/${u}/read-states/1/ack`, { message_id: String(message) });
          if (r.status === 200) acked.set(`${u}/1`, message);
          else expect(r.status).toBe(503);
        }
      }
      await waitFor('/ready to report the outage', async () => {
        const ready = await call(svc.url, 'GET', '/ready');
        return ready.status === 503 && (ready.body as { error: string }).error === 'STORE_UNAVAILABLE';
      }, 60_000);
      process.kill(pid, 'SIGCONT');
      stopped = false;
      await waitFor('/ready to recover', async () => (await call(svc.url, 'GET', '/ready')).status === 200, 120_000);
    } finally {
      if (stopped) process.kill(pid, 'SIGCONT');
      release();
    }
    expect(await svc.stop('SIGTERM', 120_000)).toBe(0);
    // Straight from Cassandra: every acknowledged change is there.
    for (const [key, message] of acked) {
      const [u] = key.split('/');
      const rs = await client.execute(`SELECT last_message_id FROM ${keyspace}.read_states WHERE user_id = ? AND channel_id = 1`, [cassandra.types.Long.fromString(u)], { prepare: true });
      expect(rs.first()?.['last_message_id'].toString(), key).toBe(String(message));
    }
  }, 300_000);
});
