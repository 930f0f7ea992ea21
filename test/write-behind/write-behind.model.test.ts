/**
 * The write-behind against a plain model (Maps of records), with a store whose apply() calls wait
 * until the test confirms or fails them: random submits (few users and channels, so records keep
 * superseding queued and in-flight ones), confirms and failures in any order, and loads. fast-check
 * with a fixed seed, so failures reproduce. Plus a backlog large enough to grow the pool several
 * times over.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ReadStateStore } from '../../workers/store/store.js';
import { WriteBehind } from '../../workers/write-behind.js';
import { RecordKind, RsWord, StoredWord, TOMB_PIN_HI, hi32, join53, lo32 } from '../../workers/protocol.js';

const SEED = 20240611;

/** A stored record as plain numbers: kind, user, read state, timestamp (StoredWord.Size words). */
type Rec = number[];

const userKey = (lo: number, hi: number) => `${lo}:${hi}`;
const recUser = (r: ArrayLike<number>, at = 0) => userKey(r[at + StoredWord.UserLo], r[at + StoredWord.UserHi]);
const recChan = (r: ArrayLike<number>, at = 0) => userKey(r[at + StoredWord.Rs + RsWord.ChanLo], r[at + StoredWord.Rs + RsWord.ChanHi]);
const recKey = (r: ArrayLike<number>, at = 0) => recUser(r, at) + '/' + recChan(r, at);
const recTs = (r: ArrayLike<number>, at = 0) => join53(r[at + StoredWord.TsLo], r[at + StoredWord.TsHi]);

interface Call {
  records: Uint32Array;
  count: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/**
 * Last-write-wins store whose apply() calls are held until the test settles them (or, with
 * `auto`, applied at once). It keeps tombstones, so its rows are exactly what it was last told.
 */
class ControlledStore implements ReadStateStore {
  readonly name = 'controlled';
  readonly users = new Map<string, Map<string, Rec>>();
  held: Call[] = [];
  /** every apply() call not looked at by the test yet, in order */
  sent: Call[] = [];
  auto = false;

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async load(lo: number, hi: number): Promise<Uint32Array> {
    const live = [...(this.users.get(userKey(lo, hi))?.values() ?? [])].filter((r) => r[StoredWord.Kind] !== RecordKind.Delete);
    const out = new Uint32Array(live.length * RsWord.Size);
    live.forEach((r, i) => out.set(r.slice(StoredWord.Rs, StoredWord.Rs + RsWord.Size), i * RsWord.Size));
    return out;
  }

  apply(records: Uint32Array, count: number): Promise<void> {
    // Not copied: if the write-behind touched a buffer it had handed over, the store would see it.
    if (this.auto) {
      this.commit(records, count);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const call = { records, count, resolve: () => (this.commit(records, count), resolve()), reject };
      this.held.push(call);
      this.sent.push(call);
    });
  }

  private commit(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const at = i * StoredWord.Size;
      const rec = Array.from(records.subarray(at, at + StoredWord.Size));
      let rows = this.users.get(recUser(rec));
      if (rows === undefined) this.users.set(recUser(rec), (rows = new Map()));
      const old = rows.get(recChan(rec));
      if (old === undefined || recTs(old) < recTs(rec)) rows.set(recChan(rec), rec);
    }
  }

  /** Every record the store holds, tombstones included, by user/channel. */
  all(): Map<string, Rec> {
    const out = new Map<string, Rec>();
    for (const rows of this.users.values()) for (const r of rows.values()) out.set(recKey(r), r);
    return out;
  }

  releaseAll(): void {
    this.auto = true;
    const held = this.held;
    this.held = [];
    for (const c of held) c.resolve();
  }
}

/** Ids with both halves in play (the top of the 53-bit range too). */
const USERS: [number, number][] = [
  [1, 0],
  [2, 0],
  [1, 1],
  [0xffffffff, 0x1fffff],
  [7, 3],
  [3, 0],
  [4, 0],
  [5, 0],
  [6, 0],
  [8, 9],
];
const CHANNELS: [number, number][] = [
  [10, 0],
  [11, 0],
  [10, 1],
  [0, 0],
  [0xfffffffe, 0x1fffff],
  [12, 5],
];

function makeRecord(out: Uint32Array, at: number, kind: number, user: number, chan: number, mention: number, ts: number): void {
  out[at + StoredWord.Kind] = kind;
  out[at + StoredWord.UserLo] = USERS[user][0];
  out[at + StoredWord.UserHi] = USERS[user][1];
  for (let j = 0; j < RsWord.Size; j++) out[at + StoredWord.Rs + j] = (ts * 31 + j) >>> 0; // distinct content per record
  out[at + StoredWord.Rs + RsWord.ChanLo] = CHANNELS[chan][0];
  out[at + StoredWord.Rs + RsWord.ChanHi] = CHANNELS[chan][1];
  out[at + StoredWord.Rs + RsWord.Mention] = mention;
  out[at + StoredWord.Rs + RsWord.MsgLo] = lo32(ts);
  out[at + StoredWord.TsLo] = lo32(ts);
  out[at + StoredWord.TsHi] = hi32(ts);
}

/** Timestamps cross 2^32 after a few dozen records. */
const FIRST_TS = 0xffffffff - 40;

/** A load result's tombstones as channel -> delete timestamp. */
function tombsOf(loaded: Uint32Array): Map<string, number> {
  const out = new Map<string, number>();
  for (let at = 0; at < loaded.length; at += RsWord.Size) {
    if (loaded[at + RsWord.PinHi] === TOMB_PIN_HI) out.set(userKey(loaded[at + RsWord.ChanLo], loaded[at + RsWord.ChanHi]), join53(loaded[at + RsWord.VerLo], loaded[at + RsWord.VerHi]));
  }
  return out;
}

/** A load result's read states as channel -> read-state words; fails on a channel listed twice. */
function byChannel(loaded: Uint32Array): Map<string, number[]> {
  expect(loaded.length % RsWord.Size).toBe(0);
  const out = new Map<string, number[]>();
  for (let at = 0; at < loaded.length; at += RsWord.Size) {
    if (loaded[at + RsWord.PinHi] === TOMB_PIN_HI) continue; // a delete (see tombsOf)
    const ck = userKey(loaded[at + RsWord.ChanLo], loaded[at + RsWord.ChanHi]);
    expect(out.has(ck), `channel ${ck} listed twice`).toBe(false);
    out.set(ck, Array.from(loaded.subarray(at, at + RsWord.Size)));
  }
  return out;
}

type Action =
  | { t: 'submit'; recs: { user: number; chan: number; del: boolean; mention: number }[] }
  | { t: 'confirm'; pick: number }
  | { t: 'fail'; pick: number }
  | { t: 'load'; user: number }
  | { t: 'wait' };

const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant('submit' as const),
      recs: fc.array(
        fc.record({
          user: fc.nat(USERS.length - 1),
          chan: fc.nat(CHANNELS.length - 1),
          del: fc.boolean(),
          mention: fc.nat(1000),
        }),
        { minLength: 1, maxLength: 6 },
      ),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('confirm' as const), pick: fc.nat(10) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('fail' as const), pick: fc.nat(10) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('load' as const), user: fc.nat(USERS.length - 1) }) },
  { weight: 1, arbitrary: fc.constant({ t: 'wait' as const }) },
);

/** Lets promise callbacks (the write-behind's then/catch) run. */
const settle = () => new Promise<void>((r) => setImmediate(r));

async function runModel(actions: Action[], o: { batchSize: number; concurrency: number; poolSize: number }): Promise<void> {
  const store = new ControlledStore();
  let failing = false;
  // lingerMs 0: every submit goes in flight at once, the model's steps decide what the store does with it (the linger has tests of its own)
  const wb = new WriteBehind(store, { ...o, lingerMs: 0, backoffMs: 1, maxBackoffMs: 1, onStateChange: (d) => (failing = d) });
  /** newest record submitted per read state */
  const latest = new Map<string, Rec>();
  /** read states whose newest record the store has not confirmed */
  const pending = new Map<string, Rec>();
  /** every record submitted, by timestamp */
  const submitted = new Map<number, Rec>();
  /** read states waiting to be sent, in the order they should go */
  let queue: string[] = [];
  let ts = FIRST_TS;

  const isNewest = (records: Uint32Array, at: number) => {
    const p = pending.get(recKey(records, at));
    return p !== undefined && recTs(p) === recTs(records, at);
  };

  /** Store calls made since the last look: full batches from the front of the queue. */
  function observeSends(): void {
    for (const c of store.sent) {
      expect(c.count).toBe(Math.min(o.batchSize, queue.length));
      const keys = queue.splice(0, c.count);
      for (let i = 0; i < c.count; i++) {
        const sent = Array.from(c.records.subarray(i * StoredWord.Size, (i + 1) * StoredWord.Size));
        expect(recKey(sent)).toBe(keys[i]);
        expect(sent).toEqual(pending.get(keys[i]));
      }
    }
    store.sent = [];
    // Sending goes on while there is room, unless the store is failing (then only a probe goes).
    if (!failing && queue.length > 0) expect(store.held.length).toBeGreaterThanOrEqual(o.concurrency);
  }

  async function check(users: number[]): Promise<void> {
    // What the store holds in its calls is still what was submitted (no buffer handed over is reused).
    for (const c of store.held) {
      for (let i = 0; i < c.count; i++) {
        const sent = Array.from(c.records.subarray(i * StoredWord.Size, (i + 1) * StoredWord.Size));
        expect(sent).toEqual(submitted.get(recTs(sent)));
      }
    }
    expect(wb.pendingRecords).toBe(pending.size);
    const stats = wb.stats();
    expect(stats.pending).toBe(pending.size);
    expect(stats.inFlight).toBe(store.held.length);
    expect(stats.queued).toBe(queue.length);
    // Each pending read state is either queued or in a held call with its newest record.
    let currentInFlight = 0;
    for (const c of store.held) for (let i = 0; i < c.count; i++) if (isNewest(c.records, i * StoredWord.Size)) currentInFlight++;
    expect(stats.queued + currentInFlight).toBe(pending.size);
    let oldest = 0;
    for (const r of pending.values()) if (oldest === 0 || recTs(r) < oldest) oldest = recTs(r);
    expect(wb.oldestPendingTs()).toBe(oldest);

    for (const u of users) {
      const [lo, hi] = USERS[u];
      const expected = byChannel(await store.load(lo, hi));
      for (const r of pending.values()) {
        if (recUser(r) !== userKey(lo, hi)) continue;
        if (r[StoredWord.Kind] === RecordKind.Delete) expected.delete(recChan(r));
        else expected.set(recChan(r), r.slice(StoredWord.Rs, StoredWord.Rs + RsWord.Size));
      }
      const loaded = await wb.load(lo, hi);
      expect(byChannel(loaded)).toEqual(expected);
      // a pending delete is a tombstone with its timestamp
      const tombs = tombsOf(loaded);
      for (const r of pending.values()) {
        if (recUser(r) === userKey(lo, hi) && r[StoredWord.Kind] === RecordKind.Delete) expect(tombs.get(recChan(r))).toBe(recTs(r));
      }
    }
  }

  try {
    for (const a of actions) {
      if (a.t === 'submit') {
        // Into the middle of a reused buffer, scribbled over afterwards: the write-behind copies.
        const buf = new Uint32Array((a.recs.length + 2) * StoredWord.Size).fill(0xdeadbeef);
        const view = buf.subarray(StoredWord.Size, StoredWord.Size + a.recs.length * StoredWord.Size);
        a.recs.forEach((r, i) => makeRecord(view, i * StoredWord.Size, r.del ? RecordKind.Delete : RecordKind.Write, r.user, r.chan, r.mention, ++ts));
        for (let i = 0; i < a.recs.length; i++) {
          const rec = Array.from(view.subarray(i * StoredWord.Size, (i + 1) * StoredWord.Size));
          latest.set(recKey(rec), rec);
          pending.set(recKey(rec), rec);
          // A queued read state keeps its place; otherwise (new, or its record is with the store)
          // it joins the back.
          if (!queue.includes(recKey(rec))) queue.push(recKey(rec));
          submitted.set(recTs(rec), rec);
        }
        wb.submit(view, a.recs.length);
        buf.fill(0xdeadbeef);
      } else if (a.t === 'confirm' || a.t === 'fail') {
        if (store.held.length > 0) {
          const [c] = store.held.splice(a.pick % store.held.length, 1);
          if (a.t === 'confirm') {
            for (let i = 0; i < c.count; i++) if (isNewest(c.records, i * StoredWord.Size)) pending.delete(recKey(c.records, i * StoredWord.Size));
            c.resolve();
          } else {
            // Back to the front in order, but only what no newer record has replaced.
            const back: string[] = [];
            for (let i = 0; i < c.count; i++) if (isNewest(c.records, i * StoredWord.Size)) back.push(recKey(c.records, i * StoredWord.Size));
            queue = [...back, ...queue];
            c.reject(new Error('injected'));
          }
        }
      } else if (a.t === 'wait') {
        await new Promise((r) => setTimeout(r, 3)); // a retry after a failure may go out
      }
      await settle();
      observeSends();
      await check(USERS.map((_, u) => u));
    }
    await check(USERS.map((_, u) => u));

    // Everything confirmed: the store holds exactly the newest record of every read state.
    store.releaseAll();
    expect(await wb.drain(5000)).toBe(true);
    expect(wb.pendingRecords).toBe(0);
    expect(wb.stats().queued).toBe(0);
    expect(wb.oldestPendingTs()).toBe(0);
    const held = store.all();
    expect(new Set(held.keys())).toEqual(new Set(latest.keys()));
    for (const [k, r] of latest) expect(held.get(k)).toEqual(r);
    pending.clear();
    queue = [];
    await check(USERS.map((_, u) => u));
  } finally {
    wb.close();
  }
}

describe('WriteBehind against a model', () => {
  it('random submits, confirms, failures and loads agree with the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { minLength: 1, maxLength: 60 }),
        fc.record({
          batchSize: fc.integer({ min: 1, max: 5 }),
          concurrency: fc.integer({ min: 1, max: 3 }),
          // 16 entries (32-bucket tables): probing, wrap-around and growth; 1024: the default
          poolSize: fc.constantFrom(16, 1024),
        }),
        (actions, o) => runModel(actions, o),
      ),
      { seed: SEED, numRuns: 150 },
    );
  });

  it('a queued write over a delete in flight: loads before and after the delete lands show the write', async () => {
    const store = new ControlledStore();
    store.auto = true;
    const wb = new WriteBehind(store, { batchSize: 1, concurrency: 1, lingerMs: 0 });
    const buf = new Uint32Array(StoredWord.Size);
    let ts = FIRST_TS;
    const put = (kind: number, chan: number) => {
      makeRecord(buf, 0, kind, 0, chan, 1, ++ts);
      wb.submit(buf, 1);
      return Array.from(buf);
    };
    const [lo, hi] = USERS[0];
    const chanOf = (c: number) => userKey(CHANNELS[c][0], CHANNELS[c][1]);
    try {
      put(RecordKind.Write, 0);
      expect(await wb.drain(1000)).toBe(true);
      store.auto = false;
      put(RecordKind.Delete, 0); // in flight
      const other = put(RecordKind.Write, 1); // queued
      const write = put(RecordKind.Write, 0); // queued behind it, a new entry (the delete is in flight)
      const expected = new Map([
        [chanOf(0), write.slice(StoredWord.Rs, StoredWord.Rs + RsWord.Size)],
        [chanOf(1), other.slice(StoredWord.Rs, StoredWord.Rs + RsWord.Size)],
      ]);
      expect(byChannel(await wb.load(lo, hi))).toEqual(expected); // the store still has channel 0
      store.held.shift()!.resolve(); // the delete lands; the other write goes out, this one waits
      await settle();
      expect(store.held).toHaveLength(1);
      expect(byChannel(await store.load(lo, hi)).size).toBe(0);
      expect(byChannel(await wb.load(lo, hi))).toEqual(expected);
      expect(byChannel(await wb.load(lo, hi))).toEqual(expected);
      store.releaseAll();
      expect(await wb.drain(1000)).toBe(true);
      expect(byChannel(await store.load(lo, hi))).toEqual(expected);
    } finally {
      wb.close();
    }
  });

  it('a backlog of many thousand read states grows the pool without losing or mixing up any', async () => {
    const store = new ControlledStore();
    const wb = new WriteBehind(store, { batchSize: 500, concurrency: 4, lingerMs: 0 });
    const USER_COUNT = 400;
    const CHANS = 50; // 20,000 read states, the pool starts at 1024 entries
    const newest = new Map<string, Rec>();
    let ts = 0;
    const buf = new Uint32Array(CHANS * StoredWord.Size);
    const put = (user: number, chans: number[], kind: (c: number) => number) => {
      chans.forEach((c, i) => {
        const at = i * StoredWord.Size;
        buf[at + StoredWord.Kind] = kind(c);
        buf[at + StoredWord.UserLo] = user;
        buf[at + StoredWord.UserHi] = user % 3;
        for (let j = 0; j < RsWord.Size; j++) buf[at + StoredWord.Rs + j] = ++ts;
        buf[at + StoredWord.Rs + RsWord.ChanLo] = 1000 + c;
        buf[at + StoredWord.Rs + RsWord.ChanHi] = c % 2;
        buf[at + StoredWord.Rs + RsWord.Flags] = user;
        buf[at + StoredWord.TsLo] = ts;
        buf[at + StoredWord.TsHi] = 0;
        const rec = Array.from(buf.subarray(at, at + StoredWord.Size));
        newest.set(recKey(rec), rec);
      });
      wb.submit(buf, chans.length);
    };
    const allChans = [...Array(CHANS).keys()];
    try {
      for (let u = 0; u < USER_COUNT; u++) put(u, allChans, () => RecordKind.Write);
      await settle();
      // Each submit sent a batch until four were in flight: users 0-3 are in the store's hands.
      expect(store.held.map((c) => c.count)).toEqual([CHANS, CHANS, CHANS, CHANS]);
      // Newer records for every 7th user, writes and deletes: user 0's go over entries in flight
      // (new entries), the others' over queued entries (in place).
      const some = allChans.filter((c) => c % 3 === 0);
      for (let u = 0; u < USER_COUNT; u += 7) put(u, some, (c) => (c % 2 === 0 ? RecordKind.Delete : RecordKind.Write));
      const total = USER_COUNT * CHANS;
      expect(wb.pendingRecords).toBe(total);
      expect(wb.stats().queued).toBe(total - 4 * CHANS + some.length);
      expect(wb.degraded).toBe(false);

      const expectLoads = async () => {
        const expected = [...Array(USER_COUNT)].map(() => new Map<string, number[]>());
        for (const r of newest.values()) {
          if (r[StoredWord.Kind] !== RecordKind.Delete) expected[r[StoredWord.UserLo]].set(recChan(r), r.slice(StoredWord.Rs, StoredWord.Rs + RsWord.Size));
        }
        for (let u = 0; u < USER_COUNT; u++) expect(byChannel(await wb.load(u, u % 3)), `user ${u}`).toEqual(expected[u]);
      };
      await expectLoads();
      expect(wb.oldestPendingTs()).toBe(Math.min(...[...newest.values()].map((r) => recTs(r))));

      // The first batch fails and goes back to the front; everything else is confirmed.
      store.held.shift()!.reject(new Error('injected'));
      await settle();
      expect(wb.pendingRecords).toBe(total);
      store.releaseAll();
      expect(await wb.drain(10_000)).toBe(true);
      expect(wb.pendingRecords).toBe(0);
      const held = store.all();
      expect(held.size).toBe(total);
      for (const [k, r] of newest) expect(held.get(k)).toEqual(r);
      await expectLoads();

      // The grown pool is reused: another full round fits and drains without mixing records up.
      for (let u = 0; u < USER_COUNT; u++) put(u, allChans, () => RecordKind.Write);
      expect(await wb.drain(10_000)).toBe(true);
      const after = store.all();
      for (const [k, r] of newest) expect(after.get(k)).toEqual(r);
    } finally {
      wb.close();
    }
  });
});
