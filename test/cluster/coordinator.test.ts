/**
 * The coordinator against a real Cassandra, several in one process (so their monotonic clocks are
 * the same clock and "two owners at once" can be checked exactly): joins, handovers, a member that
 * stops renewing, a store that does not confirm, the partition count, the store fence.
 */
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../src/cluster/coordinator.js';
import type { CassandraConfig } from '../../src/config.js';
import type { ShardRouter } from '../../src/shard-router.js';
import type { StoreLink } from '../../src/store/store-link.js';
import { Fence, allocateFence } from '../../workers/cluster-fence.js';
import { StoredWord } from '../../workers/protocol.js';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, holdCassandraExclusive, stopCassandraIfStarted } from '../support/cassandra.js';
import { until } from '../support/until.js';

const keyspace = `rs_coord_${randomBytes(4).toString('hex')}`;
const LEASE_MS = 2000;
const PARTITIONS = 32;
let cass: CassandraConfig;
let client: cassandra.Client;
let releaseCassandra: () => void = () => {};

beforeAll(async () => {
  const endpoint = await ensureCassandra();
  // leases live in Cassandra: not while another test pauses it
  releaseCassandra = await holdCassandraExclusive();
  cass = { contactPoints: [endpoint.contactPoint], port: endpoint.port, localDataCenter: CASSANDRA_DC, keyspace, replicationFactor: 1, consistency: 'local_quorum' };
  client = new cassandra.Client({ contactPoints: [endpoint.contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port: endpoint.port } });
  await client.connect();
}, CASSANDRA_HOOK_TIMEOUT_MS);

afterAll(async () => {
  releaseCassandra();
  await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client?.shutdown();
  await stopCassandraIfStarted();
}, CASSANDRA_HOOK_TIMEOUT_MS);

/** What the coordinator asks of the shards and the store, counted. */
class FakeService {
  flushes = 0;
  discards = 0;
  drainResult = true;
  readonly router = {
    ready: async () => true,
    flushAll: async () => {
      this.flushes++;
    },
    discardUsers: async () => {
      this.discards++;
    },
  } as unknown as ShardRouter;
  readonly store = { drain: async () => this.drainResult } as unknown as StoreLink;
}

interface Member {
  c: Coordinator;
  fence: Fence;
  svc: FakeService;
}

const silent = { info: () => {}, warn: () => {}, error: () => {} };
const running: Coordinator[] = [];

function member(cluster: string, name: string, partitions = PARTITIONS): Member {
  const fence = new Fence(allocateFence(partitions));
  const svc = new FakeService();
  const c = new Coordinator({
    cluster: { name: cluster, advertiseUrl: `http://127.0.0.1:1/${name}`, partitions, leaseMs: LEASE_MS, instanceId: name },
    cassandra: cass,
    router: svc.router,
    store: svc.store,
    fence,
    log: silent,
    handoverTimeoutMs: 1000,
  });
  running.push(c);
  return { c, fence, svc };
}

afterAll(async () => {
  for (const c of running) await c.close().catch(() => {});
});

function owned(c: Coordinator): number[] {
  const out: number[] = [];
  for (let p = 0; p < c.partitions; p++) if (c.ownsNow(p)) out.push(p);
  return out;
}

/** Samples every few ms until stopped: fails the test if two members ever own a partition at once. */
function watchOverlap(members: Coordinator[]): { stop(): Promise<number> } {
  let samples = 0;
  let overlap: string | null = null;
  let on = true;
  const loop = (async () => {
    while (on) {
      for (let p = 0; p < PARTITIONS; p++) {
        const owners = members.filter((m) => m.ownsNow(p));
        if (owners.length > 1 && overlap === null) overlap = `partition ${p}: ${owners.map((o) => o.instanceId).join(', ')}`;
      }
      samples++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      expect(overlap).toBeNull();
      return samples;
    },
  };
}

async function cqlOwners(cluster: string): Promise<Map<number, { owner: string | null; epoch: number }>> {
  const out = new Map<number, { owner: string | null; epoch: number }>();
  const rs = await client.execute(`SELECT cluster, partition, owner, epoch FROM ${keyspace}.cluster_partitions`);
  for (const r of rs.rows) {
    if (r['cluster'] !== cluster) continue;
    out.set(r['partition'] as number, { owner: r['owner'] as string | null, epoch: (r['epoch'] as cassandra.types.Long).toNumber() });
  }
  return out;
}

describe('cluster coordinator (real Cassandra)', () => {
  it('one member takes every partition; a second one gets its share by handover, under a bigger epoch, never two owners at once', async () => {
    const a = member('join', 'a');
    await a.c.start();
    expect(owned(a.c)).toHaveLength(PARTITIONS);
    for (let p = 0; p < PARTITIONS; p++) expect(a.c.epochOf(p)).toBe(1);
    const watch = watchOverlap([a.c]);
    const b = member('join', 'b');
    const watch2 = watchOverlap([a.c, b.c]);
    await b.c.start();
    await until('the partitions to settle', () => owned(a.c).length + owned(b.c).length === PARTITIONS && owned(b.c).length > 0, 15_000);
    await watch.stop();
    expect(await watch2.stop()).toBeGreaterThan(10);
    // A flushed and waited for the store before it released anything.
    expect(a.svc.flushes).toBeGreaterThan(0);
    const byA = owned(a.c);
    const byB = owned(b.c);
    expect(byA.length).toBeGreaterThan(PARTITIONS / 5);
    expect(byB.length).toBeGreaterThan(PARTITIONS / 5);
    for (const p of byB) {
      expect(b.c.epochOf(p)).toBe(2);
      expect(a.fence.isHeld(p)).toBe(false);
      expect(b.fence.isHeld(p)).toBe(true);
    }
    for (const p of byA) expect(a.c.epochOf(p)).toBe(1);
    // Cassandra says the same, and both views publish it.
    const rows = await cqlOwners('join');
    for (const p of byB) expect(rows.get(p)).toEqual({ owner: 'b', epoch: 2 });
    const d = a.c.describe();
    await until('the partitions to settle', () => a.c.describe().owners.every((o, p) => o.owner === (byA.includes(p) ? 'a' : 'b')), 5000);
    expect(d.members.map((m) => m.instance_id).sort()).toEqual(['a', 'b']);
    await a.c.close();
    await b.c.close();
  }, 60_000);

  it('a member that stops renewing loses its partitions when its lease ends, and only then does another take them', async () => {
    const a = member('pause', 'a');
    const b = member('pause', 'b');
    await a.c.start();
    await b.c.start();
    await until('the partitions to settle', () => owned(a.c).length + owned(b.c).length === PARTITIONS && owned(b.c).length > 0 && owned(a.c).length > 0, 15_000);
    const aHad = owned(a.c);
    const watch = watchOverlap([a.c, b.c]);
    // As if paused: no renewal, no sync (its clock still runs).
    a.c.stop();
    const stoppedAt = performance.now();
    await until('the partitions to settle', () => owned(b.c).length === PARTITIONS, 20_000);
    const tookAfter = performance.now() - stoppedAt;
    await watch.stop();
    // Not before the lease could have run out (renewed at most lease/4 before the stop).
    expect(tookAfter).toBeGreaterThan(LEASE_MS * 0.75 - LEASE_MS / 5);
    expect(owned(a.c)).toEqual([]);
    // A's fence now refuses every write, even of partitions it believed it held.
    const rec = new Uint32Array(StoredWord.Size * 2);
    rec[StoredWord.UserLo] = 1;
    rec[StoredWord.Size + StoredWord.UserLo] = 2;
    expect(a.fence.filter(rec, 2)).toBe(0);
    for (const p of aHad) expect(b.c.epochOf(p)).toBeGreaterThan(1);
    await b.c.close();
  }, 60_000);

  it('a handover whose changes the store does not confirm is abandoned: the partitions stay with their owner', async () => {
    const a = member('stuck', 'a');
    await a.c.start();
    a.svc.drainResult = false;
    const b = member('stuck', 'b');
    await b.c.start();
    await until('the partitions to settle', () => a.c.snapshot().handoversAbandoned > 0, 15_000);
    expect(owned(a.c)).toHaveLength(PARTITIONS);
    expect(owned(b.c)).toEqual([]);
    a.svc.drainResult = true;
    await until('the partitions to settle', () => owned(b.c).length > 0 && owned(a.c).length + owned(b.c).length === PARTITIONS, 15_000);
    await a.c.close();
    await b.c.close();
  }, 60_000);

  it('leaving hands everything over at once (no lease wait) and removes the member row', async () => {
    const a = member('leave', 'a');
    const b = member('leave', 'b');
    await a.c.start();
    await b.c.start();
    await until('the partitions to settle', () => owned(a.c).length > 0 && owned(b.c).length > 0 && owned(a.c).length + owned(b.c).length === PARTITIONS, 15_000);
    const watch = watchOverlap([a.c, b.c]);
    const started = performance.now();
    expect(await a.c.leave(5000)).toBe(true);
    await until('the partitions to settle', () => owned(b.c).length === PARTITIONS, 10_000);
    await watch.stop();
    expect(performance.now() - started).toBeLessThan(LEASE_MS);
    const members = await client.execute(`SELECT instance_id FROM ${keyspace}.cluster_members WHERE cluster = 'leave'`);
    expect(members.rows.map((r) => r['instance_id'])).toEqual(['b']);
    await a.c.close();
    await b.c.close();
  }, 60_000);

  it('the partition count is fixed when the cluster is created', async () => {
    const a = member('fixed', 'a', 16);
    await a.c.start();
    const b = member('fixed', 'b', 32);
    await expect(b.c.start()).rejects.toThrow(/created with 16 partitions/);
    await a.c.close();
  }, 60_000);
});
