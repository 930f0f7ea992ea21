/**
 * The ReadStateStore contract (workers/store/store.ts), one shared suite run against MemoryStore (the
 * reference), SqliteStore (temp dir) and CassandraStore (a real server, a keyspace of its own per
 * run, dropped at the end), plus store-specific tests. No mocks.
 *
 * (One file on purpose: a suite exported from one *.test.ts and imported by another would register
 * its tests in both files.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import cassandra from 'cassandra-driver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RecordKind, RsWord, StoredWord, TOMB_PIN_HI, hi32, lo32 } from '../../workers/protocol.js';
import { CassandraStore } from '../../workers/store/cassandra-store.js';
import { MAX_LOADED_TOMBSTONES } from '../../workers/store/tombstones.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { SQLITE_FILE, SqliteStore } from '../../workers/store/sqlite-store.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { WorkerStore } from '../../src/store/worker-store.js';
import { loadConfig } from '../../src/config.js';
import { fromSigned, fromU64, toSigned, toU64 } from '../../workers/store/u64.js';
import { CASSANDRA_DC, CASSANDRA_HOOK_TIMEOUT_MS, ensureCassandra, stopCassandraIfStarted } from '../support/cassandra.js';

// ---------------------------------------------------------------------------------------------
// records

interface State {
  chan: bigint;
  msg: bigint;
  mention: number;
  pin: bigint;
  flags: number;
  version: bigint;
}

const U64_MAX = (1n << 64n) - 1n;
/** The edge ids: every u64 boundary the signed mapping has to get right. */
const EDGE_IDS = [1n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, U64_MAX];
/** A realistic write timestamp (µs since the epoch, Nov 2023); tests add small offsets. */
const T0 = 1_700_000_000_000_000;

function state(chan: bigint, fields: Partial<Omit<State, 'chan'>> = {}): State {
  return { chan, msg: 0n, mention: 0, pin: 0n, flags: 0, version: 0n, ...fields };
}

function rec(kind: number, user: bigint, s: State, ts: number): Uint32Array {
  const r = new Uint32Array(StoredWord.Size);
  r[StoredWord.Kind] = kind;
  [r[StoredWord.UserLo], r[StoredWord.UserHi]] = fromU64(user);
  [r[StoredWord.Rs + RsWord.ChanLo], r[StoredWord.Rs + RsWord.ChanHi]] = fromU64(s.chan);
  [r[StoredWord.Rs + RsWord.MsgLo], r[StoredWord.Rs + RsWord.MsgHi]] = fromU64(s.msg);
  r[StoredWord.Rs + RsWord.Mention] = s.mention;
  [r[StoredWord.Rs + RsWord.PinLo], r[StoredWord.Rs + RsWord.PinHi]] = fromU64(s.pin);
  r[StoredWord.Rs + RsWord.Flags] = s.flags;
  [r[StoredWord.Rs + RsWord.VerLo], r[StoredWord.Rs + RsWord.VerHi]] = fromU64(s.version);
  r[StoredWord.TsLo] = lo32(ts);
  r[StoredWord.TsHi] = hi32(ts);
  return r;
}
const write = (user: bigint, s: State, ts: number): Uint32Array => rec(RecordKind.Write, user, s, ts);
/** A delete carries the channel; the other words are whatever the shard had (here: junk). */
const del = (user: bigint, chan: bigint, ts: number): Uint32Array => rec(RecordKind.Delete, user, state(chan, { msg: 77n, mention: 7 }), ts);

function concat(recs: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(recs.length * StoredWord.Size);
  recs.forEach((r, i) => out.set(r, i * StoredWord.Size));
  return out;
}

async function apply(store: ReadStateStore, ...recs: Uint32Array[]): Promise<void> {
  await store.apply(concat(recs), recs.length);
}

function decode(words: Uint32Array): State[] {
  expect(words.length % RsWord.Size).toBe(0);
  const out: State[] = [];
  for (let o = 0; o < words.length; o += RsWord.Size) {
    if (words[o + RsWord.PinHi] === TOMB_PIN_HI) continue; // tombstones: see tombsOf
    out.push({
      chan: toU64(words[o + RsWord.ChanLo], words[o + RsWord.ChanHi]),
      msg: toU64(words[o + RsWord.MsgLo], words[o + RsWord.MsgHi]),
      mention: words[o + RsWord.Mention],
      pin: toU64(words[o + RsWord.PinLo], words[o + RsWord.PinHi]),
      flags: words[o + RsWord.Flags],
      version: toU64(words[o + RsWord.VerLo], words[o + RsWord.VerHi]),
    });
  }
  return out.sort((a, b) => (a.chan < b.chan ? -1 : a.chan > b.chan ? 1 : 0));
}

async function load(store: ReadStateStore, user: bigint): Promise<State[]> {
  const [lo, hi] = fromU64(user);
  return decode(await store.load(lo, hi));
}

/** The tombstones a load returns, [channel, delete timestamp] by channel (channel 0: the horizon). */
async function tombsOf(store: ReadStateStore, user: bigint): Promise<[bigint, number][]> {
  const [lo, hi] = fromU64(user);
  const words = await store.load(lo, hi);
  const out: [bigint, number][] = [];
  for (let o = 0; o < words.length; o += RsWord.Size) {
    if (words[o + RsWord.PinHi] !== TOMB_PIN_HI) continue;
    out.push([toU64(words[o + RsWord.ChanLo], words[o + RsWord.ChanHi]), Number(toU64(words[o + RsWord.VerLo], words[o + RsWord.VerHi]))]);
  }
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

let userSeq = 5_000_000_000_000n;
/** A user no other test touches (stores persist across the tests of a block). */
const freshUser = (): bigint => userSeq++;

// ---------------------------------------------------------------------------------------------
// the shared contract

interface ContractOptions {
  /**
   * What a second write/delete with the SAME timestamp does. 'keep-stored': nothing (Memory,
   * SQLite: strictly newer wins). 'cassandra': Cassandra's reconciliation - per cell, a tombstone
   * beats a live cell and the larger value beats the smaller; independent of arrival order.
   */
  equalTimestamp: 'keep-stored' | 'cassandra';
}

function storeContract(getStore: () => ReadStateStore, opts: ContractOptions): void {
  it('an unknown user loads as empty', async () => {
    const words = await getStore().load(0xdeadbeef, 0x7abc);
    expect(words).toBeInstanceOf(Uint32Array);
    expect(words.length).toBe(0);
  });

  it('write then load', async () => {
    const store = getStore();
    const user = freshUser();
    const a = state(10n, { msg: 1234n, mention: 3, pin: 1_700_000_000_123n, flags: 5, version: 9n });
    const b = state(11n, { msg: 99n });
    await apply(store, write(user, a, T0), write(user, b, T0 + 1));
    expect(await load(store, user)).toEqual([a, b]);
  });

  it('apply(records, 0) changes nothing; only `count` records are applied', async () => {
    const store = getStore();
    const user = freshUser();
    await store.apply(concat([write(user, state(1n, { msg: 1n }), T0)]), 0);
    expect(await load(store, user)).toEqual([]);
    const buf = concat([write(user, state(1n, { msg: 1n }), T0), write(user, state(2n, { msg: 2n }), T0)]);
    await store.apply(buf, 1);
    expect(await load(store, user)).toEqual([state(1n, { msg: 1n })]);
  });

  it('last write wins: a newer write replaces, an older one applied after it does not', async () => {
    const store = getStore();
    const user = freshUser();
    const v1 = state(1n, { msg: 100n, mention: 1, version: 1n });
    const v2 = state(1n, { msg: 200n, mention: 0, version: 2n });
    await apply(store, write(user, v1, T0 + 10));
    await apply(store, write(user, v2, T0 + 20));
    expect(await load(store, user)).toEqual([v2]);
    await apply(store, write(user, state(1n, { msg: 999n, mention: 9, version: 99n }), T0 + 15));
    expect(await load(store, user)).toEqual([v2]);
  });

  it('records out of order within one apply() call: the newest wins', async () => {
    const store = getStore();
    const user = freshUser();
    const newest = state(1n, { msg: 3n });
    await apply(store, write(user, state(1n, { msg: 2n }), T0 + 2), write(user, newest, T0 + 3), write(user, state(1n, { msg: 9n }), T0 + 1));
    expect(await load(store, user)).toEqual([newest]);
  });

  if (opts.equalTimestamp === 'keep-stored') {
    it('an equal-timestamp write or delete does not win', async () => {
      const store = getStore();
      const user = freshUser();
      const first = state(1n, { msg: 50n, mention: 5, pin: 5n, flags: 5, version: 5n });
      await apply(store, write(user, first, T0));
      await apply(store, write(user, state(1n, { msg: 10n, mention: 1, pin: 1n, flags: 1, version: 1n }), T0));
      await apply(store, write(user, state(1n, { msg: 90n, mention: 9, pin: 9n, flags: 9, version: 9n }), T0));
      await apply(store, del(user, 1n, T0));
      expect(await load(store, user)).toEqual([first]);
    });
  } else {
    it('equal timestamps: deterministic per-cell merge (larger value, tombstone first), whatever the order', async () => {
      const store = getStore();
      const user = freshUser();
      const x = { msg: 10n, mention: 7, pin: 1n, flags: 9, version: 2n };
      const y = { msg: 20n, mention: 3, pin: 4n, flags: 1, version: 1n };
      await apply(store, write(user, state(1n, x), T0));
      await apply(store, write(user, state(1n, y), T0));
      await apply(store, write(user, state(2n, y), T0));
      await apply(store, write(user, state(2n, x), T0));
      const merged = { msg: 20n, mention: 7, pin: 4n, flags: 9, version: 2n };
      expect(await load(store, user)).toEqual([state(1n, merged), state(2n, merged)]);
      // An equal-timestamp delete wins over the write (tombstones win ties).
      await apply(store, del(user, 1n, T0));
      expect(await load(store, user)).toEqual([state(2n, merged)]);
    });
  }

  it('load returns the newest tombstones with their delete timestamps, and a horizon at the newest one left out', async () => {
    const store = getStore();
    const user = freshUser();
    await apply(store, write(user, state(1n, { msg: 1n }), T0 + 1), write(user, state(2n, { msg: 2n }), T0 + 1));
    await apply(store, del(user, 1n, T0 + 5));
    expect(await tombsOf(store, user)).toEqual([[1n, T0 + 5]]);
    // re-created: no longer a tombstone
    await apply(store, write(user, state(1n, { msg: 3n }), T0 + 6));
    expect(await tombsOf(store, user)).toEqual([]);
    // more deletes than a load brings back: the oldest are below the horizon
    const recs: Uint32Array[] = [];
    for (let c = 1; c <= MAX_LOADED_TOMBSTONES + 3; c++) recs.push(del(user, BigInt(100 + c), T0 + 100 + c));
    await apply(store, ...recs);
    const tombs = await tombsOf(store, user);
    expect(tombs[0]).toEqual([0n, T0 + 103]); // the horizon: deletes 101..103 left out
    expect(tombs.slice(1)).toEqual(Array.from({ length: MAX_LOADED_TOMBSTONES }, (_, i) => [BigInt(104 + i), T0 + 104 + i]));
    expect((await load(store, user)).map((x) => x.chan)).toEqual([1n, 2n]);
  });

  it('delete, then an older write does not resurrect; a newer write after the delete does', async () => {
    const store = getStore();
    const user = freshUser();
    await apply(store, write(user, state(1n, { msg: 1n }), T0 + 10), write(user, state(2n, { msg: 2n }), T0 + 10));
    await apply(store, del(user, 1n, T0 + 20));
    expect(await load(store, user)).toEqual([state(2n, { msg: 2n })]);
    await apply(store, write(user, state(1n, { msg: 5n }), T0 + 15));
    expect(await load(store, user)).toEqual([state(2n, { msg: 2n })]);
    const back = state(1n, { msg: 6n, mention: 2 });
    await apply(store, write(user, back, T0 + 30));
    expect(await load(store, user)).toEqual([back, state(2n, { msg: 2n })]);
  });

  it('a delete that lands before the older write it follows still shadows that write', async () => {
    const store = getStore();
    const user = freshUser();
    await apply(store, del(user, 1n, T0 + 20));
    expect(await load(store, user)).toEqual([]);
    await apply(store, write(user, state(1n, { msg: 1n }), T0 + 10));
    expect(await load(store, user)).toEqual([]);
    // ...and within one call, in either order.
    await apply(store, write(user, state(2n, { msg: 2n }), T0 + 10), del(user, 2n, T0 + 20));
    await apply(store, del(user, 3n, T0 + 20), write(user, state(3n, { msg: 3n }), T0 + 10));
    expect(await load(store, user)).toEqual([]);
  });

  it('a delete older than the stored write changes nothing', async () => {
    const store = getStore();
    const user = freshUser();
    const s = state(1n, { msg: 1n });
    await apply(store, write(user, s, T0 + 20));
    await apply(store, del(user, 1n, T0 + 10));
    expect(await load(store, user)).toEqual([s]);
  });

  it('retrying the same apply() changes nothing', async () => {
    const store = getStore();
    const user = freshUser();
    const recs = [write(user, state(1n, { msg: 1n }), T0 + 1), del(user, 2n, T0 + 2), write(user, state(3n, { msg: 3n }), T0 + 3)];
    await apply(store, ...recs);
    const before = await load(store, user);
    await apply(store, ...recs);
    await apply(store, ...recs.reverse());
    expect(await load(store, user)).toEqual(before);
    expect(before).toEqual([state(1n, { msg: 1n }), state(3n, { msg: 3n })]);
  });

  it('user, channel and message ids at the u64 edges round-trip exactly', async () => {
    const store = getStore();
    const recs: Uint32Array[] = [];
    const expected = new Map<bigint, State[]>();
    for (const [u, user] of EDGE_IDS.entries()) {
      const states = EDGE_IDS.map((chan, c) => state(chan, { msg: EDGE_IDS[(u + c) % EDGE_IDS.length], version: BigInt(c) }));
      states.forEach((s) => recs.push(write(user, s, T0 + recs.length)));
      expected.set(user, states);
    }
    await apply(store, ...recs);
    for (const [user, states] of expected) expect(await load(store, user)).toEqual(states);
    // Deleting the top-bit ids hits the same rows.
    await apply(store, del(U64_MAX, U64_MAX, T0 + 1_000), del(U64_MAX, 2n ** 63n, T0 + 1_000));
    expect((await load(store, U64_MAX)).map((s) => s.chan)).toEqual(EDGE_IDS.slice(0, 5));
  });

  it('field extremes round-trip: flags 2^32-1, mention 2^31-1 and 2^32-1, pin 2^53-1, large versions', async () => {
    const store = getStore();
    const user = freshUser();
    const states = [
      state(1n, { msg: 1n, mention: 2 ** 31 - 1, pin: 2n ** 53n - 1n, flags: 2 ** 32 - 1, version: 2n ** 53n - 1n }),
      state(2n, { msg: U64_MAX, mention: 2 ** 32 - 1, pin: 2n ** 52n, flags: 2 ** 31, version: U64_MAX }),
      state(3n, { msg: 0n, mention: 0, pin: 0n, flags: 0, version: 0n }),
    ];
    await apply(store, ...states.map((s, i) => write(user, s, T0 + i)));
    expect(await load(store, user)).toEqual(states);
  });

  it('write timestamps up to 2^53-1 order correctly (the high timestamp word counts)', async () => {
    const store = getStore();
    const user = freshUser();
    const top = 2 ** 53 - 1;
    const newest = state(1n, { msg: 2n });
    await apply(store, write(user, newest, top));
    await apply(store, write(user, state(1n, { msg: 1n }), top - 1));
    await apply(store, write(user, state(1n, { msg: 3n }), 2 ** 32 + 5)); // same low word region, smaller
    expect(await load(store, user)).toEqual([newest]);
  });

  it('a user with 2,000 read states loads completely', async () => {
    const store = getStore();
    const user = freshUser();
    const states = Array.from({ length: 2_000 }, (_, i) => state(BigInt(i) * 7_919n + 2n ** 40n, { msg: BigInt(i), mention: i % 50 }));
    await apply(store, ...states.map((s, i) => write(user, s, T0 + i)));
    const got = await load(store, user);
    expect(got.length).toBe(2_000);
    expect(got).toEqual(states);
  });

  it('many users in one apply() call, interleaved', async () => {
    const store = getStore();
    const users = Array.from({ length: 300 }, () => freshUser());
    const recs: Uint32Array[] = [];
    for (let c = 1n; c <= 3n; c++) for (const u of users) recs.push(write(u, state(c, { msg: u * 10n + c }), T0 + recs.length));
    // and a delete per user, of channel 2
    for (const u of users) recs.push(del(u, 2n, T0 + 1_000_000));
    await apply(store, ...recs);
    for (const u of users) expect(await load(store, u)).toEqual([state(1n, { msg: u * 10n + 1n }), state(3n, { msg: u * 10n + 3n })]);
  });
}

// ---------------------------------------------------------------------------------------------
// MemoryStore (the reference)

describe('MemoryStore', () => {
  const store = new MemoryStore();
  beforeAll(() => store.open());
  afterAll(() => store.close());
  storeContract(() => store, { equalTimestamp: 'keep-stored' });
});

// ---------------------------------------------------------------------------------------------
// SqliteStore

describe('SqliteStore', () => {
  let dir: string;
  let store: SqliteStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rs-sqlite-'));
    store = new SqliteStore({ dataDir: join(dir, 'nested', 'data') });
    await store.open();
  });
  afterAll(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  storeContract(() => store, { equalTimestamp: 'keep-stored' });

  describe('specifics', () => {
    it('creates <dataDir>/read-states.sqlite (mkdir -p) in WAL mode with the specified table', () => {
      expect(store.file).toBe(join(dir, 'nested', 'data', SQLITE_FILE));
      const db = new Database(store.file, { readonly: true });
      try {
        expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
        const sql = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'read_states'").pluck().get() as string;
        expect(sql).toMatch(/WITHOUT ROWID/);
        expect(sql).toMatch(/PRIMARY KEY \(user_id, channel_id\)/);
        const cols = db.prepare('SELECT name, type FROM pragma_table_info(?)').all('read_states');
        expect(cols).toEqual(
          ['user_id', 'channel_id', 'last_message_id', 'mention_count', 'last_pin_timestamp', 'flags', 'version', 'write_ts', 'deleted'].map(
            (name) => ({ name, type: 'INTEGER' }),
          ),
        );
      } finally {
        db.close();
      }
    });

    it('stores u64 ids as signed 64-bit integers, tombstones as deleted = 1 rows', async () => {
      const user2 = 2n ** 63n + 5n;
      await apply(store, write(user2, state(2n ** 63n, { msg: 2n ** 64n - 2n }), T0), del(user2, 4n, T0));
      await apply(store, write(U64_MAX, state(U64_MAX), T0));
      const db = new Database(store.file, { readonly: true });
      try {
        db.defaultSafeIntegers(true);
        const row = db.prepare('SELECT * FROM read_states WHERE user_id = ? AND channel_id = ?').get(toSigned(...fromU64(user2)), -(2n ** 63n)) as Record<string, bigint>;
        expect(row.user_id).toBe(-(2n ** 63n) + 5n);
        expect(row.last_message_id).toBe(-2n);
        expect(fromSigned(row.user_id)).toEqual(fromU64(user2));
        expect(row.write_ts).toBe(BigInt(T0));
        expect(row.deleted).toBe(0n);
        const tomb = db.prepare('SELECT deleted, write_ts FROM read_states WHERE user_id = ? AND channel_id = 4').get(toSigned(...fromU64(user2)));
        expect(tomb).toEqual({ deleted: 1n, write_ts: BigInt(T0) });
        expect(db.prepare('SELECT count(*) FROM read_states WHERE user_id = -1 AND channel_id = -1').pluck().get()).toBe(1n);
      } finally {
        db.close();
      }
    });

    it('reopened from the same dir, the data and the tombstones are there', async () => {
      const user = freshUser();
      const kept = state(1n, { msg: 2n ** 63n + 1n, mention: 4, pin: 123n, flags: 6, version: 8n });
      await apply(store, write(user, kept, T0 + 10), write(user, state(2n, { msg: 2n }), T0 + 10), del(user, 2n, T0 + 20));
      await store.close();
      await expect(store.load(0, 0)).rejects.toThrow(/not open/);
      const again = new SqliteStore({ dataDir: join(dir, 'nested', 'data') });
      await again.open();
      try {
        expect(await load(again, user)).toEqual([kept]);
        await apply(again, write(user, state(2n, { msg: 3n }), T0 + 15)); // older than the tombstone
        expect(await load(again, user)).toEqual([kept]);
      } finally {
        await again.close();
      }
      await store.open(); // the suite's store, for later tests
      expect(await load(store, user)).toEqual([kept]);
    });
  });
});

describe('SqliteStore with a checkpointer thread (as the store worker opens it)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'rs-ckpt-'));
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** 40 transactions of 1,000 records on scattered users: thousands of WAL pages in all */
  async function writeMany(store: SqliteStore, seed: bigint): Promise<bigint[]> {
    const users: bigint[] = [];
    for (let t = 0; t < 40; t++) {
      const recs: Uint32Array[] = [];
      for (let i = 0; i < 1_000; i++) {
        const user = ((seed + BigInt(t * 1_000 + i)) * 0x9e3779b97f4a7c15n) & ((1n << 62n) - 1n);
        if (i === 0) users.push(user);
        recs.push(write(user, state(BigInt(i + 1), { msg: BigInt(t + 1), mention: t }), T0 + t));
      }
      await apply(store, ...recs);
    }
    return users;
  }
  /** frames in the WAL now (asked from a connection of the test's own; it copies them too) */
  const walFrames = (store: SqliteStore): number => {
    const db = new Database(store.file);
    try {
      return (db.prepare('PRAGMA wal_checkpoint(PASSIVE)').raw(true).get() as number[])[1];
    } finally {
      db.close();
    }
  };

  it('commits do not checkpoint: the WAL grows past SQLite\'s 1,000-page automatic checkpoint until the thread copies it', async () => {
    // a thread that will not run within the test: only the writer could checkpoint here
    const store = new SqliteStore({ dataDir: join(dir, 'idle'), checkpointer: { intervalMs: 3_600_000 } });
    await store.open();
    try {
      const users = await writeMany(store, 1n);
      expect(store.checkpoints).toBeNull();
      expect(walFrames(store)).toBeGreaterThan(3_000); // 5,330 here
      expect(await load(store, users[7])).toHaveLength(1);
    } finally {
      await store.close();
    }
    // the writer's close checkpointed the rest: nothing lost, WAL gone
    const again = new SqliteStore({ dataDir: join(dir, 'idle') });
    await again.open();
    try {
      const db = new Database(again.file, { readonly: true });
      try {
        expect(db.prepare('SELECT count(*) FROM read_states').pluck().get()).toBe(40_000);
      } finally {
        db.close();
      }
    } finally {
      await again.close();
    }
  });

  it('without a checkpointer, SQLite checkpoints inside commits and the WAL stays near 1,000 pages (control)', async () => {
    const store = new SqliteStore({ dataDir: join(dir, 'inline') });
    await store.open();
    try {
      await writeMany(store, 1n);
      // at most the 1,000 pages that trigger a checkpoint plus the pages of one transaction
      expect(walFrames(store)).toBeLessThan(2_000); // 998 here
    } finally {
      await store.close();
    }
  });

  it('the thread copies the WAL into the database file while the writer goes on', async () => {
    const store = new SqliteStore({ dataDir: join(dir, 'busy'), checkpointer: { intervalMs: 10 } });
    await store.open();
    try {
      const users = await writeMany(store, 2n);
      await new Promise((r) => setTimeout(r, 300));
      const c = store.checkpoints;
      expect(c).not.toBeNull();
      expect(c!.checkpoints).toBeGreaterThan(0);
      expect(c!.pages).toBeGreaterThan(1_000);
      expect(await load(store, users[39])).toEqual([state(1n, { msg: 40n, mention: 39 })]);
    } finally {
      await store.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// CassandraStore (real server)

describe('WorkerStore (SQLite on the store worker thread, as the service runs it)', () => {
  let dir: string;
  let store: WorkerStore;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rs-worker-'));
    store = new WorkerStore({ kind: 'sqlite', dataDir: dir, cassandra: loadConfig([], {}).cassandra });
    await store.open();
  });
  afterAll(async () => {
    await store?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  storeContract(() => store, { equalTimestamp: 'keep-stored' });

  it('a load does not wait behind write batches queued before it, and every write still lands', async () => {
    const reader = freshUser();
    await apply(store, write(reader, state(9n, { mention: 3 }), T0));
    // four big batches in flight at once, as the write-behind sends them, then a load
    const writers = [freshUser(), freshUser(), freshUser(), freshUser()];
    const order: string[] = [];
    const batches = writers.map((u, b) => {
      const recs: Uint32Array[] = [];
      for (let c = 1; c <= 20_000; c++) recs.push(write(u, state(BigInt(c), { mention: b + 1 }), T0 + c));
      return store.apply(concat(recs), recs.length).then(() => order.push(`write ${b}`));
    });
    const loaded = load(store, reader).then((s) => {
      order.push('load');
      return s;
    });
    await Promise.all([...batches, loaded]);
    expect(await loaded).toEqual([state(9n, { mention: 3 })]);
    // the load overtook at least the last batch (FIFO would put it after all four)
    expect(order.indexOf('load')).toBeLessThan(order.indexOf('write 3'));
    // writes keep their order among themselves
    expect(order.filter((x) => x !== 'load')).toEqual(['write 0', 'write 1', 'write 2', 'write 3']);
    for (const [b, u] of writers.entries()) {
      const got = await load(store, u);
      expect(got.length).toBe(20_000);
      expect(got.every((x) => x.mention === b + 1)).toBe(true);
    }
  });

  it('close() waits for writes it was handed before it', async () => {
    const d2 = mkdtempSync(join(tmpdir(), 'rs-worker-close-'));
    try {
      const s2 = new WorkerStore({ kind: 'sqlite', dataDir: d2, cassandra: loadConfig([], {}).cassandra });
      await s2.open();
      const u = freshUser();
      const recs: Uint32Array[] = [];
      for (let c = 1; c <= 5_000; c++) recs.push(write(u, state(BigInt(c)), T0 + c));
      const written = s2.apply(concat(recs), recs.length);
      await s2.close();
      await written;
      const s3 = new SqliteStore({ dataDir: d2 });
      await s3.open();
      expect((await load(s3, u)).length).toBe(5_000);
      await s3.close();
    } finally {
      rmSync(d2, { recursive: true, force: true });
    }
  });
});

describe('CassandraStore', () => {
  const keyspace = `rs_test_${Date.now().toString(36)}_${process.pid}`;
  const failKeyspace = `${keyspace}_f`;
  let port = 9042;
  let contactPoint = '127.0.0.1';
  let store: CassandraStore;
  let admin: cassandra.Client | undefined;
  const options = () => ({
    contactPoints: [contactPoint],
    port,
    localDataCenter: CASSANDRA_DC,
    keyspace,
    replicationFactor: 1,
    consistency: 'local_quorum' as const,
    // small pages so that loading the 2,000-state user needs several
    pageSize: 500,
  });

  beforeAll(async () => {
    ({ contactPoint, port } = await ensureCassandra());
    store = new CassandraStore(options());
    await store.open();
    admin = new cassandra.Client({ contactPoints: [contactPoint], localDataCenter: CASSANDRA_DC, protocolOptions: { port } });
    await admin.connect();
  }, CASSANDRA_HOOK_TIMEOUT_MS);

  afterAll(async () => {
    try {
      await store?.close();
      if (admin !== undefined) {
        for (const ks of [keyspace, failKeyspace]) await admin.execute(`DROP KEYSPACE IF EXISTS ${ks}`);
        await admin.shutdown();
      }
    } finally {
      await stopCassandraIfStarted();
    }
  }, CASSANDRA_HOOK_TIMEOUT_MS);

  storeContract(() => store, { equalTimestamp: 'cassandra' });

  describe('specifics', () => {
    it('writes signed bigints with the record timestamp; u64 ids >= 2^63 are negative and convert back', async () => {
      const user = 2n ** 64n - 3n;
      const chan = 2n ** 63n;
      const s = state(chan, { msg: U64_MAX, mention: 2 ** 31 - 1, pin: 2n ** 53n - 1n, flags: 2 ** 32 - 1, version: 2n ** 40n });
      await apply(store, write(user, s, T0 + 42), write(user, state(5n, { msg: 5n }), T0), del(user, 5n, T0 + 1));
      const rs = await admin!.execute(
        `SELECT user_id, channel_id, last_message_id, mention_count, last_pin_timestamp, flags, version, writetime(last_message_id) AS wt
         FROM ${keyspace}.read_states WHERE user_id = ?`,
        [cassandra.types.Long.fromString(toSigned(...fromU64(user)).toString())],
        { prepare: true },
      );
      // channel 5 is deleted: a row of its own kind, its version the delete's timestamp
      expect(rs.rowLength).toBe(2);
      const row = rs.rows.find((r) => r['channel_id'].toString() !== '5')!;
      const gone = await admin!.execute(
        `SELECT deleted, version, writetime(deleted) AS wt FROM ${keyspace}.read_states WHERE user_id = ? AND channel_id = 5`,
        [cassandra.types.Long.fromString(toSigned(...fromU64(user)).toString())],
        { prepare: true },
      );
      expect([gone.first()['deleted'], gone.first()['version'].toString(), gone.first()['wt'].toString()]).toEqual([true, String(T0 + 1), String(T0 + 1)]);
      const big = (v: cassandra.types.Long): bigint => BigInt(v.toString());
      expect(big(row['user_id'])).toBe(-3n);
      expect(big(row['channel_id'])).toBe(-(2n ** 63n));
      expect(row['channel_id'].isNegative()).toBe(true);
      expect(big(row['last_message_id'])).toBe(-1n);
      expect(toU64(...fromSigned(big(row['user_id'])))).toBe(user);
      expect(toU64(...fromSigned(big(row['channel_id'])))).toBe(chan);
      expect(toU64(...fromSigned(big(row['last_message_id'])))).toBe(U64_MAX);
      expect(row['mention_count']).toBe(2 ** 31 - 1);
      expect(big(row['last_pin_timestamp'])).toBe(2n ** 53n - 1n);
      expect(big(row['flags'])).toBe(2n ** 32n - 1n);
      expect(big(row['version'])).toBe(2n ** 40n);
      expect(big(row['wt'])).toBe(BigInt(T0 + 42));
      const types = Object.fromEntries(rs.columns.map((c) => [c.name, c.type.code]));
      expect(types).toMatchObject({ user_id: cassandra.types.dataTypes.bigint, mention_count: cassandra.types.dataTypes.int, flags: cassandra.types.dataTypes.bigint });
    });

    it('the table has the specified schema', async () => {
      const rs = await admin!.execute(
        'SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?',
        [keyspace, 'read_states'],
      );
      const cols = Object.fromEntries(rs.rows.map((r) => [r['column_name'], `${r['kind']} ${r['type']}`]));
      expect(cols).toEqual({
        user_id: 'partition_key bigint',
        channel_id: 'clustering bigint',
        last_message_id: 'regular bigint',
        mention_count: 'regular int',
        last_pin_timestamp: 'regular bigint',
        flags: 'regular bigint',
        version: 'regular bigint',
        deleted: 'regular boolean',
      });
      const ks = await admin!.execute('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [keyspace]);
      expect(ks.first()['replication']).toMatchObject({ class: 'org.apache.cassandra.locator.SimpleStrategy', replication_factor: '1' });
    });

    it('load() follows pages: a user larger than one page comes back whole', async () => {
      const user = freshUser();
      const states = Array.from({ length: 1_201 }, (_, i) => state(BigInt(i), { msg: BigInt(i) }));
      await apply(store, ...states.map((s, i) => write(user, s, T0 + i)));
      const first = await admin!.execute(`SELECT channel_id FROM ${keyspace}.read_states WHERE user_id = ?`, [cassandra.types.Long.fromString(user.toString())], {
        prepare: true,
        fetchSize: 500,
      });
      expect(first.rowLength).toBe(500);
      expect(first.pageState).toBeTruthy();
      expect(await load(store, user)).toEqual(states);
    });

    it('a second store on the same keyspace opens (idempotent DDL) and sees the data', async () => {
      const user = freshUser();
      await apply(store, write(user, state(1n, { msg: 1n }), T0));
      const other = new CassandraStore(options());
      await other.open();
      try {
        expect(await load(other, user)).toEqual([state(1n, { msg: 1n })]);
      } finally {
        await other.close();
      }
    });

    it('apply() rejects when the server fails the writes', async () => {
      const failing = new CassandraStore({ ...options(), keyspace: failKeyspace });
      await failing.open();
      try {
        await admin!.execute(`DROP TABLE ${failKeyspace}.read_states`);
        const user = freshUser();
        await expect(apply(failing, write(user, state(1n), T0), write(freshUser(), state(1n), T0))).rejects.toThrow();
        await expect(failing.load(1, 0)).rejects.toThrow();
      } finally {
        await failing.close();
      }
    });

    it('open() rejects when no Cassandra answers', async () => {
      const nowhere = new CassandraStore({ ...options(), port: 1 });
      await expect(nowhere.open()).rejects.toThrow(/All host\(s\) tried for query failed|ECONNREFUSED/);
      await expect(nowhere.load(0, 0)).rejects.toThrow(/not open/);
    });

    it('rejects bad options', () => {
      expect(() => new CassandraStore({ ...options(), keyspace: 'x; DROP' })).toThrow(/keyspace/);
      expect(() => new CassandraStore({ ...options(), replicationFactor: 0 })).toThrow(/replication/);
    });
  });
});
