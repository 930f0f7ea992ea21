/**
 * The store fence on a real Cassandra: a write of a partition this instance does not hold, and any
 * write once its lease has ended, never reaches Cassandra, while the call still completes (the
 * write-behind must not retry what it may no longer write).
 */
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fence, allocateFence, monotonicMs } from '../../workers/cluster-fence.js';
import { partitionOf } from '../../workers/hash.js';
import { RecordKind } from '../../workers/protocol.js';
import { CassandraStore } from '../../workers/store/cassandra-store.js';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, stopCassandraIfStarted } from '../support/cassandra.js';
import { mentions, record } from '../support/store-records.js';

const keyspace = `rs_fence_${randomBytes(4).toString('hex')}`;
const PARTITIONS = 8;
let store: CassandraStore;
let fence: Fence;
let client: cassandra.Client;

beforeAll(async () => {
  const e = await ensureCassandra();
  fence = new Fence(allocateFence(PARTITIONS));
  store = new CassandraStore({ contactPoints: [e.contactPoint], port: e.port, localDataCenter: CASSANDRA_DC, keyspace, replicationFactor: 1, consistency: 'local_quorum', fence });
  await store.open();
  client = new cassandra.Client({ contactPoints: [e.contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port: e.port } });
}, CASSANDRA_HOOK_TIMEOUT_MS);

afterAll(async () => {
  await client?.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {});
  await client?.shutdown();
  await store?.close();
  await stopCassandraIfStarted();
}, CASSANDRA_HOOK_TIMEOUT_MS);

/** Two users in different partitions. */
function twoUsers(): [number, number] {
  const a = 1;
  let b = 2;
  while (partitionOf(b, 0, PARTITIONS) === partitionOf(a, 0, PARTITIONS)) b++;
  return [a, b];
}

function both(a: number, b: number, mention: number, ts: number): Uint32Array {
  const r1 = record(RecordKind.Write, a, 10, mention, ts);
  const r2 = record(RecordKind.Write, b, 10, mention, ts);
  const out = new Uint32Array(r1.length * 2);
  out.set(r1);
  out.set(r2, r1.length);
  return out;
}

describe('store fence (real Cassandra)', () => {
  it('writes only partitions held under a valid lease', async () => {
    const [a, b] = twoUsers();
    fence.setHeld(partitionOf(a, 0, PARTITIONS), true);
    fence.validUntil = monotonicMs() + 60_000;
    await store.apply(both(a, b, 3, 1_000), 2);
    expect(mentions(await store.load(a, 0))).toEqual({ 10: 3 });
    expect(mentions(await store.load(b, 0))).toEqual({});
    expect(store.fenced).toBe(1);

    // the lease ended: not even the held partition is written
    fence.validUntil = monotonicMs() - 1;
    await store.apply(both(a, b, 7, 2_000), 2);
    expect(mentions(await store.load(a, 0))).toEqual({ 10: 3 });
    expect(store.fenced).toBe(3);

    // renewed: writes go out again
    fence.validUntil = monotonicMs() + 60_000;
    fence.setHeld(partitionOf(b, 0, PARTITIONS), true);
    await store.apply(both(a, b, 9, 3_000), 2);
    expect(mentions(await store.load(a, 0))).toEqual({ 10: 9 });
    expect(mentions(await store.load(b, 0))).toEqual({ 10: 9 });
  }, 60_000);
});
