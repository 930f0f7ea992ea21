/**
 * Cluster state in Cassandra (the same keyspace as the read states), all of it behind this file:
 *
 *   cluster_meta       (cluster PK, partitions int)              fixed at cluster creation
 *   cluster_members    ((cluster), instance_id), url, renewals bigint, leaving boolean
 *                      one row per running process, renewed with an LWT (renewals = old + 1), TTL'd
 *   cluster_partitions ((cluster, partition)), owner text, epoch bigint
 *                      the owner of each partition; epoch + 1 with every new owner (LWT)
 *
 * Every change of ownership and every renewal is a lightweight transaction (IF ..., SERIAL), so
 * two instances can never both believe they took the same partition under the same epoch. An LWT
 * whose outcome is unknown (a timeout: Paxos may or may not have committed) is settled by reading
 * the row back at SERIAL, which completes any round in progress. Each partition row is its own
 * Cassandra partition, so takes and releases of different partitions never contend in Paxos;
 * members share one (a handful of rows, renewed a few times a second in all).
 */
import cassandra from 'cassandra-driver';
import type { CassandraConfig } from '../config.js';

const { consistencies } = cassandra.types;

export interface MemberRow {
  instanceId: string;
  url: string;
  renewals: number;
  leaving: boolean;
}

export interface PartitionRow {
  /** null: released, or never owned (no row yet: epoch 0) */
  owner: string | null;
  epoch: number;
}

/** schema statements and the partition count, once at start-up (a loaded Cassandra takes its time) */
const SETUP_TIMEOUT_MS = 60_000;

/** Partition rows read per query (IN on the last partition-key column). */
const READ_CHUNK = 128;

export class LeaseTable {
  private readonly client: cassandra.Client;
  private readonly ks: string;
  private readonly cluster: string;
  private readonly memberTtlS: number;
  private readonly lwt: cassandra.QueryOptions;
  private readonly read: cassandra.QueryOptions;
  private readonly serialRead: cassandra.QueryOptions;
  /** LWTs whose outcome was unknown and had to be read back */
  unknownOutcomes = 0;

  constructor(c: CassandraConfig, cluster: string, leaseMs: number) {
    this.client = new cassandra.Client({
      contactPoints: c.contactPoints,
      localDataCenter: c.localDataCenter,
      protocolOptions: { port: c.port },
      // A lease decision must not wait behind the driver's default 12 s; past half a lease the
      // answer comes too late to matter (set-up statements below get longer).
      socketOptions: { readTimeout: Math.max(2000, Math.floor(leaseMs / 2)) },
    });
    this.ks = c.keyspace;
    this.cluster = cluster;
    // A member row outlives its process by a few leases: long enough for everyone to see it die.
    this.memberTtlS = Math.max(30, Math.ceil((leaseMs * 10) / 1000));
    const quorum = c.consistency === 'one' || c.consistency === 'local_one' ? consistencies.localQuorum : consistencies.quorum;
    this.lwt = { prepare: true, consistency: quorum, serialConsistency: consistencies.serial };
    this.read = { prepare: true, consistency: quorum };
    this.serialRead = { prepare: true, consistency: consistencies.serial };
  }

  async open(replicationFactor: number): Promise<void> {
    await this.client.connect();
    const ks = this.ks;
    const ddl = [
      `CREATE KEYSPACE IF NOT EXISTS ${ks} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': ${replicationFactor}}`,
      `CREATE TABLE IF NOT EXISTS ${ks}.cluster_meta (cluster text PRIMARY KEY, partitions int)`,
      `CREATE TABLE IF NOT EXISTS ${ks}.cluster_members (cluster text, instance_id text, url text, renewals bigint, leaving boolean, PRIMARY KEY ((cluster), instance_id))`,
      `CREATE TABLE IF NOT EXISTS ${ks}.cluster_partitions (cluster text, partition int, owner text, epoch bigint, PRIMARY KEY ((cluster, partition)))`,
    ];
    for (const q of ddl) await this.client.execute(q, [], { prepare: false, readTimeout: SETUP_TIMEOUT_MS });
  }

  /** The cluster's partition count: set by the first instance, checked by every later one. */
  async partitionCount(wanted: number): Promise<number> {
    const rs = await this.client.execute(`INSERT INTO ${this.ks}.cluster_meta (cluster, partitions) VALUES (?, ?) IF NOT EXISTS`, [this.cluster, wanted], { ...this.lwt, readTimeout: SETUP_TIMEOUT_MS });
    if (rs.wasApplied()) return wanted;
    return rs.first()['partitions'] as number;
  }

  /** Joins as a new member (renewals = 1). False if the id is taken. */
  async register(m: MemberRow): Promise<boolean> {
    const q = `INSERT INTO ${this.ks}.cluster_members (cluster, instance_id, url, renewals, leaving) VALUES (?, ?, ?, 1, false) IF NOT EXISTS USING TTL ?`;
    return this.settle(
      () => this.client.execute(q, [this.cluster, m.instanceId, m.url, this.memberTtlS], this.lwt),
      async () => {
        const row = await this.memberSerial(m.instanceId);
        return row !== null && row.renewals === 1 && row.url === m.url;
      },
    );
  }

  /** renewals: old -> old + 1 (and `leaving` as given). False: the row is gone or was changed. */
  async renew(instanceId: string, url: string, renewals: number, leaving: boolean): Promise<boolean> {
    const q = `UPDATE ${this.ks}.cluster_members USING TTL ? SET url = ?, renewals = ?, leaving = ? WHERE cluster = ? AND instance_id = ? IF renewals = ?`;
    const next = cassandra.types.Long.fromNumber(renewals + 1);
    return this.settle(
      () => this.client.execute(q, [this.memberTtlS, url, next, leaving, this.cluster, instanceId, cassandra.types.Long.fromNumber(renewals)], this.lwt),
      async () => {
        const row = await this.memberSerial(instanceId);
        return row !== null && row.renewals === renewals + 1;
      },
    );
  }

  async leave(instanceId: string): Promise<void> {
    await this.client.execute(`DELETE FROM ${this.ks}.cluster_members WHERE cluster = ? AND instance_id = ?`, [this.cluster, instanceId], this.read);
  }

  async members(): Promise<MemberRow[]> {
    const rs = await this.client.execute(`SELECT instance_id, url, renewals, leaving FROM ${this.ks}.cluster_members WHERE cluster = ?`, [this.cluster], this.read);
    return rs.rows.map((r) => ({
      instanceId: r['instance_id'] as string,
      url: r['url'] as string,
      renewals: (r['renewals'] as cassandra.types.Long).toNumber(),
      leaving: r['leaving'] === true,
    }));
  }

  /** Every partition's row (owner null, epoch 0 where none exists yet). */
  async partitions(count: number): Promise<PartitionRow[]> {
    const out: PartitionRow[] = Array.from({ length: count }, () => ({ owner: null, epoch: 0 }));
    const q = `SELECT partition, owner, epoch FROM ${this.ks}.cluster_partitions WHERE cluster = ? AND partition IN ?`;
    const chunks: Promise<void>[] = [];
    for (let from = 0; from < count; from += READ_CHUNK) {
      const ids: number[] = [];
      for (let p = from; p < Math.min(count, from + READ_CHUNK); p++) ids.push(p);
      chunks.push(
        this.client.execute(q, [this.cluster, ids], this.read).then((rs) => {
          for (const r of rs.rows) out[r['partition'] as number] = { owner: (r['owner'] as string | null) ?? null, epoch: (r['epoch'] as cassandra.types.Long).toNumber() };
        }),
      );
    }
    await Promise.all(chunks);
    return out;
  }

  /** Takes partition p, seen as `seen`, under epoch seen.epoch + 1. */
  async take(p: number, seen: PartitionRow, me: string): Promise<boolean> {
    const epoch = seen.epoch + 1;
    const run =
      seen.epoch === 0
        ? () => this.client.execute(`INSERT INTO ${this.ks}.cluster_partitions (cluster, partition, owner, epoch) VALUES (?, ?, ?, ?) IF NOT EXISTS`, [this.cluster, p, me, cassandra.types.Long.fromNumber(epoch)], this.lwt)
        : () =>
            this.client.execute(
              `UPDATE ${this.ks}.cluster_partitions SET owner = ?, epoch = ? WHERE cluster = ? AND partition = ? IF epoch = ?`,
              [me, cassandra.types.Long.fromNumber(epoch), this.cluster, p, cassandra.types.Long.fromNumber(seen.epoch)],
              this.lwt,
            );
    return this.settle(run, async () => {
      const row = await this.partitionSerial(p);
      return row.owner === me && row.epoch === epoch;
    });
  }

  /** Gives partition p up (owner null, same epoch): the next owner may take it at once. */
  async release(p: number, epoch: number, me: string): Promise<boolean> {
    return this.settle(
      () =>
        this.client.execute(`UPDATE ${this.ks}.cluster_partitions SET owner = null WHERE cluster = ? AND partition = ? IF owner = ? AND epoch = ?`, [this.cluster, p, me, cassandra.types.Long.fromNumber(epoch)], this.lwt),
      async () => {
        const row = await this.partitionSerial(p);
        return row.owner !== me || row.epoch !== epoch;
      },
    );
  }

  async close(): Promise<void> {
    await this.client.shutdown();
  }

  /**
   * Runs an LWT; on an error that leaves its outcome unknown (a timeout), reads the row back at
   * SERIAL (`check`), which finishes any Paxos round in progress, and answers from that.
   */
  private async settle(run: () => Promise<cassandra.types.ResultSet>, check: () => Promise<boolean>): Promise<boolean> {
    try {
      return (await run()).wasApplied();
    } catch (err) {
      if (!outcomeUnknown(err)) throw err;
      this.unknownOutcomes++;
      return check();
    }
  }

  private async memberSerial(instanceId: string): Promise<MemberRow | null> {
    const rs = await this.client.execute(`SELECT instance_id, url, renewals, leaving FROM ${this.ks}.cluster_members WHERE cluster = ? AND instance_id = ?`, [this.cluster, instanceId], this.serialRead);
    const r = rs.first();
    if (r === null) return null;
    return { instanceId, url: r['url'] as string, renewals: (r['renewals'] as cassandra.types.Long).toNumber(), leaving: r['leaving'] === true };
  }

  private async partitionSerial(p: number): Promise<PartitionRow> {
    const rs = await this.client.execute(`SELECT owner, epoch FROM ${this.ks}.cluster_partitions WHERE cluster = ? AND partition = ?`, [this.cluster, p], this.serialRead);
    const r = rs.first();
    return r === null ? { owner: null, epoch: 0 } : { owner: (r['owner'] as string | null) ?? null, epoch: (r['epoch'] as cassandra.types.Long).toNumber() };
  }
}

/** A write timeout (CAS) or a client-side timeout: the LWT may or may not have committed. */
function outcomeUnknown(err: unknown): boolean {
  if (err instanceof cassandra.errors.OperationTimedOutError) return true;
  // unavailable: refused before Paxos started, so it is a plain failure
  if (err instanceof cassandra.errors.ResponseError) return err.code === cassandra.types.responseErrorCodes.writeTimeout;
  return false;
}
