/**
 * Durable store on Apache Cassandra (cassandra-driver 4), one partition per user:
 *
 *   CREATE TABLE <ks>.read_states (user_id bigint, channel_id bigint, last_message_id bigint,
 *     mention_count int, last_pin_timestamp bigint, flags bigint, version bigint, deleted boolean,
 *     PRIMARY KEY ((user_id), channel_id))
 *
 * Last-write-wins comes from Cassandra itself: every write and every delete is
 * `INSERT ... USING TIMESTAMP ?` of every column with the record's microsecond write timestamp, so
 * a write or delete older than what a replica holds changes nothing, batches may be retried (the
 * statements are idempotent) and may land out of order. A delete is a row of its own kind
 * (deleted = true, version = the delete's timestamp, the other columns 0), not a CQL DELETE: a
 * CQL tombstone cannot be read back, and a delta sync must report recent deletes after an
 * eviction or a restart (load() returns the newest of them, see tombstones.ts). Like SQLite's
 * tombstone rows they are kept; an older write arriving later still loses to them. Rows written
 * before the column existed read as live (deleted is null).
 *
 * One difference from MemoryStore / SqliteStore, inherent to Cassandra: on an EQUAL timestamp
 * Cassandra does not keep the first arrival. It reconciles cell by cell: a tombstone beats a live
 * cell, and between two live cells the larger value wins. The outcome is deterministic and the same
 * on every replica whatever the arrival order, but an equal-timestamp write with larger values
 * (or an equal-timestamp delete) does replace what is stored. The service's timestamps are
 * strictly increasing per shard and a user lives on one shard, so two different mutations of
 * one (user, channel) with the same timestamp only happen if a clock goes backwards; a retry of
 * the same record is identical and changes nothing.
 *
 * u64 ids and other 64-bit words map to signed bigint (two's complement, see u64.ts) with
 * types.Long.fromBits(lo, hi) - no BigInt on this path; mention_count (a uint32 word) goes into
 * the int column as its signed 32-bit reinterpretation and comes back with `>>> 0`, so the whole
 * uint32 range is lossless; flags (uint32) go into a bigint column.
 *
 * apply() groups records by user (partition) and sends one UNLOGGED batch per partition (a
 * single-partition batch is one mutation: atomic and isolated on each replica, and cheap), split
 * into batches of at most MAX_BATCH statements to stay far below the server's batch and mutation
 * limits, at most `concurrency` batches in flight. It resolves once every batch has been
 * acknowledged at the configured consistency and rejects (after the in-flight batches settle) on
 * the first failure; the caller retries the whole call, which the timestamps make safe.
 *
 * The driver only reports through 'log' events on the client; nothing listens here, so it prints
 * nothing.
 */
import cassandra from 'cassandra-driver';
import { RecordKind, RsWord, StoredWord } from '../protocol.js';
import type { ReadStateStore } from './store.js';
import { LoadedTombstones } from './tombstones.js';
import { monotonicMs, type Fence } from '../cluster-fence.js';

type Long = cassandra.types.Long;
const Long = cassandra.types.Long;

export type CassandraConsistency = 'one' | 'local_one' | 'quorum' | 'local_quorum' | 'all';

export interface CassandraStoreOptions {
  contactPoints: string[];
  localDataCenter: string;
  keyspace: string;
  /** for a keyspace this store creates (SimpleStrategy); an existing keyspace is left as it is */
  replicationFactor: number;
  consistency: CassandraConsistency;
  /** CQL port, default 9042 */
  port?: number;
  /** rows per page when loading a user, default 5000 */
  pageSize?: number;
  /** batches in flight at once per apply() call, default 16 */
  concurrency?: number;
  /** statements per batch, default 100 (a statement is ~100 bytes: ~10 KiB per batch) */
  maxBatch?: number;
  /**
   * Cluster mode: writes of partitions this instance no longer holds, or any write once its lease
   * has ended, are dropped instead of sent (checked as the call starts and again before each batch
   * leaves, so a process paused in between does not send after its lease).
   */
  fence?: Fence;
}

const CONSISTENCY: Record<CassandraConsistency, number> = {
  one: cassandra.types.consistencies.one,
  local_one: cassandra.types.consistencies.localOne,
  quorum: cassandra.types.consistencies.quorum,
  local_quorum: cassandra.types.consistencies.localQuorum,
  all: cassandra.types.consistencies.all,
};

const KEYSPACE_RE = /^[A-Za-z][A-Za-z0-9_]{0,47}$/;

interface Statement {
  query: string;
  params: unknown[];
}

export class CassandraStore implements ReadStateStore {
  readonly name: string = 'cassandra';
  private readonly options: CassandraStoreOptions;
  private readonly consistency: number;
  private readonly pageSize: number;
  private readonly concurrency: number;
  private readonly maxBatch: number;
  private readonly insertCql: string;
  private readonly deleteCql: string;
  private readonly selectCql: string;
  private client: cassandra.Client | undefined;
  private readonly fence: Fence | undefined;
  /** records the fence kept from being written */
  fenced = 0;

  constructor(options: CassandraStoreOptions) {
    if (!KEYSPACE_RE.test(options.keyspace)) throw new Error(`invalid Cassandra keyspace name: ${JSON.stringify(options.keyspace)}`);
    if (!Number.isInteger(options.replicationFactor) || options.replicationFactor < 1) {
      throw new Error(`invalid replication factor: ${options.replicationFactor}`);
    }
    if (!(options.consistency in CONSISTENCY)) throw new Error(`invalid consistency: ${String(options.consistency)}`);
    if (options.contactPoints.length === 0) throw new Error('no Cassandra contact points');
    this.options = options;
    this.consistency = CONSISTENCY[options.consistency];
    this.pageSize = options.pageSize ?? 5000;
    this.concurrency = Math.max(1, options.concurrency ?? 16);
    this.maxBatch = Math.max(1, options.maxBatch ?? 100);
    this.fence = options.fence;
    const table = `${options.keyspace}.read_states`;
    this.insertCql =
      `INSERT INTO ${table} (user_id, channel_id, last_message_id, mention_count, last_pin_timestamp, flags, version, deleted) ` +
      'VALUES (?, ?, ?, ?, ?, ?, ?, false) USING TIMESTAMP ?';
    this.deleteCql =
      `INSERT INTO ${table} (user_id, channel_id, last_message_id, mention_count, last_pin_timestamp, flags, version, deleted) ` +
      'VALUES (?, ?, 0, 0, 0, 0, ?, true) USING TIMESTAMP ?';
    this.selectCql =
      `SELECT channel_id, last_message_id, mention_count, last_pin_timestamp, flags, version, deleted FROM ${table} WHERE user_id = ?`;
  }

  async open(): Promise<void> {
    if (this.client !== undefined) return;
    const o = this.options;
    const client = new cassandra.Client({
      contactPoints: o.contactPoints,
      localDataCenter: o.localDataCenter,
      protocolOptions: { port: o.port ?? 9042 },
      queryOptions: { consistency: this.consistency, prepare: true },
    });
    try {
      await client.connect();
      await client.execute(
        `CREATE KEYSPACE IF NOT EXISTS ${o.keyspace} WITH replication = ` +
          `{'class': 'SimpleStrategy', 'replication_factor': ${o.replicationFactor}}`,
        [],
        { prepare: false },
      );
      await client.execute(
        `CREATE TABLE IF NOT EXISTS ${o.keyspace}.read_states (user_id bigint, channel_id bigint, ` +
          'last_message_id bigint, mention_count int, last_pin_timestamp bigint, flags bigint, version bigint, ' +
          'deleted boolean, PRIMARY KEY ((user_id), channel_id))',
        [],
        { prepare: false },
      );
      // A table created before deletes became rows: add the column.
      const cols = await client.execute(
        'SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
        [o.keyspace, 'read_states'],
        { prepare: true },
      );
      if (!cols.rows.some((r) => r['column_name'] === 'deleted')) {
        await client.execute(`ALTER TABLE ${o.keyspace}.read_states ADD deleted boolean`, [], { prepare: false });
      }
      // The driver prepares on first use and caches (there is no public prepare()); preparing the
      // read now checks the table has the columns this code expects before anything is queued.
      await client.execute(this.selectCql, [Long.ZERO], { prepare: true, consistency: this.consistency, fetchSize: 1 });
    } catch (err) {
      await client.shutdown().catch(() => {});
      throw err;
    }
    this.client = client;
  }

  async load(userLo: number, userHi: number): Promise<Uint32Array> {
    const client = this.opened();
    const user = Long.fromBits(userLo, userHi, false);
    let out = new Uint32Array(0);
    let n = 0;
    const tombs = new LoadedTombstones();
    let pageState: string | undefined;
    do {
      const rs = await client.execute(this.selectCql, [user], {
        prepare: true,
        consistency: this.consistency,
        isIdempotent: true,
        fetchSize: this.pageSize,
        pageState,
      });
      const rows = rs.rows;
      if ((n + rows.length) * RsWord.Size > out.length) {
        const grown = new Uint32Array(Math.max((n + rows.length) * RsWord.Size, out.length * 2));
        grown.set(out.subarray(0, n * RsWord.Size));
        out = grown;
      }
      for (const row of rows) {
        const chan = row['channel_id'] as Long;
        if (row['deleted'] === true) {
          tombs.add(chan.low >>> 0, chan.high >>> 0, (row['version'] as Long).toNumber());
          continue;
        }
        const o = n++ * RsWord.Size;
        const msg = row['last_message_id'] as Long;
        const pin = row['last_pin_timestamp'] as Long;
        const flags = row['flags'] as Long;
        const ver = row['version'] as Long;
        out[o + RsWord.ChanLo] = chan.low >>> 0;
        out[o + RsWord.ChanHi] = chan.high >>> 0;
        out[o + RsWord.MsgLo] = msg.low >>> 0;
        out[o + RsWord.MsgHi] = msg.high >>> 0;
        out[o + RsWord.Mention] = (row['mention_count'] as number) >>> 0;
        out[o + RsWord.PinLo] = pin.low >>> 0;
        out[o + RsWord.PinHi] = pin.high >>> 0;
        out[o + RsWord.Flags] = flags.low >>> 0;
        out[o + RsWord.VerLo] = ver.low >>> 0;
        out[o + RsWord.VerHi] = ver.high >>> 0;
      }
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    const result = new Uint32Array((n + tombs.records) * RsWord.Size);
    result.set(out.subarray(0, n * RsWord.Size));
    tombs.writeTo(result, n * RsWord.Size);
    return result;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    const client = this.opened();
    if (records.length < count * StoredWord.Size) throw new RangeError(`apply: ${count} records need ${count * StoredWord.Size} words, got ${records.length}`);
    if (this.fence !== undefined) {
      const kept = this.fence.filter(records, count);
      this.fenced += count - kept;
      count = kept;
    }
    if (count === 0) return;

    // Group by partition (user), in arrival order; then cut each partition into batches.
    const partitions = new Map<string, Statement[]>();
    for (let i = 0; i < count; i++) {
      const r = i * StoredWord.Size;
      const s = r + StoredWord.Rs;
      const userLo = records[r + StoredWord.UserLo];
      const userHi = records[r + StoredWord.UserHi];
      const key = userLo + ':' + userHi;
      let stmts = partitions.get(key);
      if (stmts === undefined) {
        stmts = [];
        partitions.set(key, stmts);
      }
      const user = Long.fromBits(userLo, userHi, false);
      const chan = Long.fromBits(records[s + RsWord.ChanLo], records[s + RsWord.ChanHi], false);
      const ts = Long.fromBits(records[r + StoredWord.TsLo], records[r + StoredWord.TsHi], false);
      if (records[r + StoredWord.Kind] === RecordKind.Delete) {
        stmts.push({ query: this.deleteCql, params: [user, chan, ts, ts] });
      } else {
        stmts.push({
          query: this.insertCql,
          params: [
            user,
            chan,
            Long.fromBits(records[s + RsWord.MsgLo], records[s + RsWord.MsgHi], false),
            records[s + RsWord.Mention] | 0,
            Long.fromBits(records[s + RsWord.PinLo], records[s + RsWord.PinHi], false),
            Long.fromBits(records[s + RsWord.Flags], 0, false),
            Long.fromBits(records[s + RsWord.VerLo], records[s + RsWord.VerHi], false),
            ts,
          ],
        });
      }
    }
    const batches: Statement[][] = [];
    for (const stmts of partitions.values()) {
      for (let at = 0; at < stmts.length; at += this.maxBatch) batches.push(stmts.slice(at, at + this.maxBatch));
    }
    await runBounded(batches, this.concurrency, (batch) => this.send(client, batch));
  }

  async close(): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    this.client = undefined;
    await client.shutdown();
  }

  private async send(client: cassandra.Client, batch: Statement[]): Promise<void> {
    if (this.fence !== undefined && monotonicMs() >= this.fence.validUntil) {
      this.fenced += batch.length;
      return;
    }
    const options = { prepare: true, isIdempotent: true, consistency: this.consistency };
    if (batch.length === 1) {
      await client.execute(batch[0].query, batch[0].params, options);
    } else {
      await client.batch(batch, { ...options, logged: false });
    }
  }

  private opened(): cassandra.Client {
    if (this.client === undefined) throw new Error('CassandraStore is not open');
    return this.client;
  }
}

/**
 * Runs fn over items with at most `limit` in flight. On the first failure no new item starts;
 * rejects with that failure once the ones in flight have settled (so nothing of this call is
 * still running when the caller retries).
 */
async function runBounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let failure: unknown;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        if (!failed) {
          failed = true;
          failure = err;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failed) throw failure;
}
