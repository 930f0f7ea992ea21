/**
 * One cluster member as a process over a real Cassandra: it joins before it is ready, owns every
 * partition, publishes them, exports and documents its metrics, refuses a changed partition
 * count, and a graceful stop leaves no member row and no partition owned.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, holdCassandraExclusive, stopCassandraIfStarted } from '../support/cassandra.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';

const keyspace = `rs_member_${randomBytes(4).toString('hex')}`;
let cassPort = 9042;
let client: cassandra.Client;
let releaseCassandra: () => void = () => {};
const dirs: string[] = [];

beforeAll(async () => {
  const e = await ensureCassandra();
  // leases live in Cassandra: not while another test pauses it
  releaseCassandra = await holdCassandraExclusive();
  cassPort = e.port;
  client = new cassandra.Client({ contactPoints: [e.contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port: e.port } });
  await client.connect();
}, CASSANDRA_HOOK_TIMEOUT_MS);

afterAll(async () => {
  releaseCassandra();
  await stopAllChildren();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client?.shutdown();
  await stopCassandraIfStarted();
}, CASSANDRA_HOOK_TIMEOUT_MS);

function args(partitions: number, extra: string[] = []): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'rs-member-'));
  dirs.push(dir);
  return ['--store', 'cassandra', '--cassandra-keyspace', keyspace, '--cassandra-port', String(cassPort), '--data-dir', dir, '--shards', '1', '--capacity', '1000', '--cluster', 'solo', '--partitions', String(partitions), '--lease-ms', '2000', ...extra];
}

interface ClusterJson {
  cluster: string | null;
  instance_id: string;
  partitions: number;
  members: { instance_id: string; url: string; alive: boolean; leaving: boolean }[];
  owners: { owner: string | null; url: string | null; epoch: number }[];
}

describe('a cluster member process (real Cassandra)', () => {
  it('owns and publishes every partition, exports documented metrics, and leaves cleanly', async () => {
    const s = new ChildService(await freePort(), args(32));
    await s.start();
    const d = (await (await fetch(s.url + '/v1/cluster')).json()) as ClusterJson;
    expect(d.cluster).toBe('solo');
    expect(d.partitions).toBe(32);
    expect(d.owners).toHaveLength(32);
    for (const o of d.owners) expect(o).toEqual({ owner: d.instance_id, url: s.url, epoch: 1 });
    expect(d.members).toEqual([{ instance_id: d.instance_id, url: s.url, alive: true, leaving: false }]);

    const text = await (await fetch(s.url + '/metrics')).text();
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const families = [...text.matchAll(/^# TYPE (readstates_cluster_\S+) (\S+)$/gm)];
    expect(families.length).toBeGreaterThanOrEqual(10);
    for (const [, name] of families) expect(readme, `README documents ${name}`).toContain(`\`${name}\``);
    expect(text).toMatch(/^readstates_cluster_partitions_owned 32$/m);
    expect(Number(/^readstates_cluster_lease_renewals_total (\d+)/m.exec(text)?.[1])).toBeGreaterThan(0);

    // a write reaches Cassandra through the graceful stop's handover
    expect((await fetch(s.url + '/v1/users/77/read-states/5/mentions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
    expect(await s.stop('SIGTERM')).toBe(0);
    const members = await client.execute(`SELECT instance_id FROM ${keyspace}.cluster_members WHERE cluster = 'solo'`);
    expect(members.rows).toEqual([]);
    const rows = await client.execute(`SELECT cluster, owner FROM ${keyspace}.cluster_partitions`);
    expect(rows.rows.filter((r) => r['cluster'] === 'solo' && r['owner'] !== null)).toEqual([]);
    const stored = await client.execute(`SELECT mention_count FROM ${keyspace}.read_states WHERE user_id = 77 AND channel_id = 5`);
    expect(stored.first()?.['mention_count']).toBe(1);

    // a later member of the same cluster takes the partitions under the next epoch and reads the write
    const again = new ChildService(await freePort(), args(32));
    await again.start();
    const d2 = (await (await fetch(again.url + '/v1/cluster')).json()) as ClusterJson;
    for (const o of d2.owners) expect(o.epoch).toBe(2);
    const rs = (await (await fetch(again.url + '/v1/users/77/read-states/5')).json()) as { mention_count: number };
    expect(rs.mention_count).toBe(1);

    // another partition count is refused at start-up, saying why
    const wrong = new ChildService(await freePort(), args(64));
    wrong.spawn();
    expect(await wrong.exited(60_000)).not.toBe(0);
    expect(wrong.output).toMatch(/created with 32 partitions/);
    await again.stop('SIGTERM');
  }, 120_000);

  it('/v1/cluster answers {"cluster": null} for a single instance', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rs-member-'));
    dirs.push(dir);
    const s = new ChildService(await freePort(), ['--store', 'memory', '--data-dir', dir, '--shards', '1', '--capacity', '100']);
    await s.start();
    expect(await (await fetch(s.url + '/v1/cluster')).json()).toEqual({ cluster: null });
    await s.stop('SIGTERM');
  }, 60_000);
});
