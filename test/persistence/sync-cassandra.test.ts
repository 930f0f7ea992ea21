/**
 * User versions and recent deletes survive eviction, a SIGTERM restart and kill -9 with the
 * Cassandra store (a real Cassandra, started by test/support/cassandra.ts when none answers):
 * deletes are rows Cassandra can give back (workers/store/cassandra-store.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, stopCassandraIfStarted } from '../support/cassandra.js';
import { checkScenario, evictBy, writeScenario } from '../support/sync-scenario.js';

const keyspace = `rs_sync_${randomBytes(4).toString('hex')}`;
let client: cassandra.Client;
let port = 9042;
const dirs: string[] = [];

beforeAll(async () => {
  const endpoint = await ensureCassandra();
  port = endpoint.port;
  client = new cassandra.Client({ contactPoints: [endpoint.contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port } });
  await client.connect();
}, CASSANDRA_HOOK_TIMEOUT_MS);

afterAll(async () => {
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client?.shutdown();
  await stopCassandraIfStarted();
}, CASSANDRA_HOOK_TIMEOUT_MS);

it('cassandra: versions and deletes survive eviction, SIGTERM restart and SIGKILL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-sync-cassandra-'));
  dirs.push(dir);
  const args = ['--store', 'cassandra', '--cassandra-keyspace', keyspace, '--cassandra-port', String(port), '--data-dir', dir, '--shards', '1', '--capacity', '64', '--max-users', '8'];
  let svc = new ChildService(await freePort(), args);
  await svc.start(120_000);

  const evicted = await writeScenario(svc.url, '2001');
  await evictBy(svc.url, 20, 50_000);
  await checkScenario(svc.url, evicted);

  const restarted = await writeScenario(svc.url, '2002');
  expect(await svc.stop('SIGTERM', 120_000)).toBe(0);
  // the deletes are rows: deleted = true, version = the delete's timestamp
  const rows = await client.execute(`SELECT channel_id, deleted, version FROM ${keyspace}.read_states WHERE user_id = 2002`);
  const tombs = rows.rows.filter((r) => r['deleted'] === true).map((r) => r['channel_id'].toString());
  expect(tombs.sort()).toEqual(['4', '5']);
  expect(Math.max(...rows.rows.map((r) => Number(r['version'].toString())))).toBe(restarted.last.version);

  svc = new ChildService(await freePort(), args);
  await svc.start(120_000);
  await checkScenario(svc.url, restarted);

  const killed = await writeScenario(svc.url, '2003');
  expect(await svc.stop('SIGKILL')).toBe(null);
  svc = new ChildService(await freePort(), args);
  await svc.start(120_000);
  expect(svc.output).toMatch(/journal: \d+ changes from \d+ segments/);
  await checkScenario(svc.url, killed);

  const again = await writeScenario(svc.url, '2004');
  await evictBy(svc.url, 20, 60_000);
  await checkScenario(svc.url, again);
  expect(await svc.stop('SIGTERM', 120_000)).toBe(0);
}, 300_000);

it('cassandra: a table from before deletes were rows gets the column, and its rows read as live', async () => {
  const ks = `${keyspace}_old`;
  await client.execute(`CREATE KEYSPACE ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`);
  try {
    await client.execute(
      `CREATE TABLE ${ks}.read_states (user_id bigint, channel_id bigint, last_message_id bigint, mention_count int, last_pin_timestamp bigint, flags bigint, version bigint, PRIMARY KEY ((user_id), channel_id))`,
    );
    await client.execute(`INSERT INTO ${ks}.read_states (user_id, channel_id, last_message_id, mention_count, last_pin_timestamp, flags, version) VALUES (7, 8, 9, 2, 0, 0, 3)`);
    const dir = mkdtempSync(join(tmpdir(), 'rs-sync-cassandra-'));
    dirs.push(dir);
    const svc = new ChildService(await freePort(), ['--store', 'cassandra', '--cassandra-keyspace', ks, '--cassandra-port', String(port), '--data-dir', dir, '--shards', '1']);
    await svc.start(120_000);
    const r = await fetch(`${svc.url}/v1/users/7/read-states`);
    expect(await r.json()).toEqual({
      user_id: '7',
      version: 3,
      full: true,
      read_states: [{ user_id: '7', channel_id: '8', last_message_id: '9', mention_count: 2, last_pin_timestamp: 0, flags: 0, version: 3 }],
    });
    expect(await svc.stop('SIGTERM', 120_000)).toBe(0);
  } finally {
    await client.execute(`DROP KEYSPACE IF EXISTS ${ks}`).catch(() => {});
  }
}, 300_000);
