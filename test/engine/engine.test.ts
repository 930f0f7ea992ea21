/**
 * Hand-written engine scenarios: the paths the randomized model test reaches only by chance, each
 * pinned down with exact expectations (parking and replay order, eviction write-back, 503 and 507,
 * failed loads, boundary values).
 */
import { describe, expect, it } from 'vitest';
import {
  EngineHarness,
  U64_MAX,
  ack,
  del,
  get,
  getAll,
  mention,
  patch,
  verifyMemory,
  type OpResult,
} from '../support/engine-harness.js';
import { ResultStatus } from '../../workers/protocol.js';
import { H_DIRTY, H_RS_COUNT, H_USER_COUNT } from '../../workers/shard-memory.js';

const A = 0xffffffff00000001n;
const B = 2n;
const C = 1n << 32n;
const MAX_MENTIONS = 0x7fffffff;

type Summary = [number, boolean, string | undefined, number | undefined, number | undefined];

function summary(r: OpResult): Summary {
  const rs = r.states[0];
  return [r.status, r.changed, rs?.lastMessageId.toString(), rs?.mentionCount, rs?.version];
}

/**
 * Answers about ONE read state against expectations whose last field is a rank, not a version:
 * versions are write timestamps, so equal ranks must show equal versions and a higher rank a
 * higher version (undefined: no read state in the answer).
 */
function expectRanked(got: Summary[], want: Summary[]): void {
  expect(got.map((g) => g.slice(0, 4))).toEqual(want.map((w) => w.slice(0, 4)));
  for (let i = 0; i < want.length; i++) {
    for (let j = 0; j < want.length; j++) {
      const wi = want[i][4];
      const wj = want[j][4];
      if (wi === undefined || wj === undefined) continue;
      expect(got[i][4], `answer ${i}`).toBeGreaterThan(0);
      if (wi === wj) expect(got[i][4], `answers ${i} and ${j}`).toBe(got[j][4]);
      else if (wi < wj) expect(got[i][4]!, `answers ${i} and ${j}`).toBeLessThan(got[j][4]!);
    }
  }
}

describe('parking and replay', () => {
  it('replays the ops parked behind a load in arrival order', () => {
    const h = new EngineHarness({ capacity: 8, maxUsers: 2 });
    const ops = [
      ack(A, 7n, 10n, { mentionCount: 2 }),
      mention(A, 7n, { count: 3 }),
      ack(A, 7n, 5n, { manual: true, mentionCount: 0 }),
      mention(A, 7n, { messageId: 4n }),
      mention(A, 7n, { messageId: 6n, count: 2 }),
      ack(A, 7n, 5n, { mentionCount: 9 }), // not ahead of 5: nothing changes
      get(A, 7n),
    ];
    const tickets = h.step(ops);
    expect(h.results.size, 'nothing answered before the load').toBe(0);
    expect(h.loadRequests).toBe(1);
    expect(h.engine.loading).toBe(1);
    verifyMemory(h.m, h.engine);
    h.drain();
    const got = tickets.map((t) => summary(h.take(t)));
    expectRanked(got, [
      [ResultStatus.Ok, true, '10', 2, 1],
      [ResultStatus.Ok, true, '10', 5, 2],
      [ResultStatus.Ok, true, '5', 0, 3],
      [ResultStatus.Ok, false, '5', 0, 3],
      [ResultStatus.Ok, true, '5', 2, 4],
      [ResultStatus.Ok, false, '5', 2, 4],
      [ResultStatus.Ok, false, '5', 2, 4],
    ]);
    expect(h.loadRequests, 'one load per user, however many ops wait for it').toBe(1);
    verifyMemory(h.m, h.engine);
  });

  it('installs loads before the ops of the task that carries them', () => {
    const h = new EngineHarness({ capacity: 8, maxUsers: 2 });
    h.one(ack(A, 1n, 100n));
    h.evictAll();
    const first = h.step([ack(A, 1n, 200n)]); // A misses: parked, load requested
    expect(h.loadsPending).toBe(true);
    const second = h.step([get(A, 1n), ack(A, 1n, 150n, { manual: true })]); // rides with A's load
    expect(h.loadsPending).toBe(false);
    expectRanked(
      [summary(h.take(first[0])), summary(h.take(second[0])), summary(h.take(second[1]))],
      [
        [ResultStatus.Ok, true, '200', 0, 2],
        [ResultStatus.Ok, false, '200', 0, 2],
        [ResultStatus.Ok, true, '150', 0, 3],
      ],
    );
  });

  it('a user evicted by a load and asked for in the same task reloads what the eviction wrote', () => {
    // capacity 1: installing B (one stored read state) must evict A, whose read state is dirty.
    const h = new EngineHarness({ capacity: 1, maxUsers: 2 });
    const vb = h.one(ack(B, 1n, 1n)).states[0].version;
    h.evictAll();
    const va = h.one(ack(A, 9n, 90n, { mentionCount: 4 })).states[0].version;
    const t1 = h.step([get(B, 1n)]); // B misses
    const t2 = h.step([get(A, 9n)]); // B installs (evicting A), then A misses
    expect(h.engine.counters.evictions).toBe(2);
    h.drain();
    expect(summary(h.take(t1[0]))).toEqual([ResultStatus.Ok, false, '1', 0, vb]);
    expect(summary(h.take(t2[0]))).toEqual([ResultStatus.Ok, false, '90', 4, va]);
    verifyMemory(h.m, h.engine);
  });
});

describe('write-back', () => {
  it('writes only dirty read states on eviction and keeps versions across reloads', () => {
    const h = new EngineHarness({ capacity: 8, maxUsers: 4 });
    const first = h.run([ack(A, 1n, 1n), ack(A, 2n, 1n), ack(A, 3n, 1n), ack(A, 3n, 2n)]).map((r) => r.states[0].version);
    h.evictAll();
    expect(h.store.writes).toBe(3);
    expect(first[3]).toBeGreaterThan(first[2]);
    expect(h.store.statesOf(A).map((rs) => rs.version)).toEqual([first[0], first[1], first[3]]);
    // Reads and no-op writes leave nothing to write back.
    h.run([getAll(A), get(A, 2n), ack(A, 1n, 1n), mention(A, 2n, { messageId: 1n }), patch(A, 3n, { flags: 0 })]);
    expect(h.m.header[H_DIRTY]).toBe(0);
    h.evictAll();
    expect(h.store.writes).toBe(3);
    // One change: one write, version continues from the stored one.
    const third = summary(h.one(ack(A, 3n, 3n)));
    expect(third.slice(0, 4)).toEqual([ResultStatus.Ok, true, '3', 0]);
    expect(third[4]).toBeGreaterThan(first[3]);
    h.evictAll();
    expect(h.store.writes).toBe(4);
    expect(h.store.statesOf(A).map((rs) => [rs.channelId, rs.version])).toEqual([
      [1n, first[0]],
      [2n, first[1]],
      [3n, third[4]],
    ]);
  });

  it('a deleted read state does not come back after eviction and reload', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const before = h.run([ack(A, 1n, 5n), ack(A, 2n, 5n)])[0].states[0].version;
    h.evictAll();
    expect(h.one(del(A, 1n)).status).toBe(ResultStatus.NoContent);
    expect(h.one(del(A, 1n)).status).toBe(ResultStatus.NotFound);
    h.evictAll();
    expect(h.store.statesOf(A).map((rs) => rs.channelId)).toEqual([2n]);
    expect(h.one(get(A, 1n)).status).toBe(ResultStatus.NotFound);
    // Re-created after a delete: a new read state, its version a new change's.
    const again = summary(h.one(mention(A, 1n)));
    expect(again.slice(0, 4)).toEqual([ResultStatus.Ok, true, '0', 1]);
    expect(again[4]).toBeGreaterThan(before);
  });

  it('a read state created and deleted while cached leaves nothing in the store', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    h.run([ack(A, 1n, 5n), del(A, 1n)]);
    h.evictAll();
    expect(h.store.statesOf(A)).toEqual([]);
    expect(h.m.header[H_RS_COUNT]).toBe(0);
    expect(h.m.header[H_USER_COUNT]).toBe(0);
  });
});

describe('capacity limits', () => {
  it('507 for an op that would grow a user that already fills the shard; other ops still work', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 4 });
    const [versionB, versionC] = h.run([ack(B, 1n, 1n), ack(C, 1n, 1n)]).map((x) => x.states[0].version);
    const fill = h.run([1n, 2n, 3n, 4n].map((c) => ack(A, c, 10n)));
    expect(fill.map((r) => r.status)).toEqual([ResultStatus.Ok, ResultStatus.Ok, ResultStatus.Ok, ResultStatus.Ok]);
    expect(h.engine.counters.evictions, 'B and C made room').toBe(2);
    const r = h.run([
      ack(A, 5n, 10n),
      mention(A, 5n),
      patch(A, 5n, { flags: 1 }),
      get(A, 5n),
      del(A, 5n),
      ack(A, 4n, 11n), // existing read state: no growth
      getAll(A),
    ]);
    expect(r.map((x) => x.status)).toEqual([
      ResultStatus.InsufficientStorage,
      ResultStatus.InsufficientStorage,
      ResultStatus.InsufficientStorage,
      ResultStatus.NotFound,
      ResultStatus.NotFound,
      ResultStatus.Ok,
      ResultStatus.Ok,
    ]);
    expect(r.slice(0, 3).every((x) => !x.changed && x.states.length === 0)).toBe(true);
    expect(r[6].states.map((rs) => rs.channelId)).toEqual([1n, 2n, 3n, 4n]);
    expect(h.engine.counters.rejectedFull).toBe(3);
    // After a delete there is room again.
    expect(h.one(del(A, 1n)).status).toBe(ResultStatus.NoContent);
    expect(summary(h.one(ack(A, 5n, 10n))).slice(0, 4)).toEqual([ResultStatus.Ok, true, '10', 0]);
    // B and C were written back when evicted and are intact.
    expect(summary(h.one(get(B, 1n)))).toEqual([ResultStatus.Ok, false, '1', 0, versionB]);
    expect(summary(h.one(get(C, 1n)))).toEqual([ResultStatus.Ok, false, '1', 0, versionC]);
    verifyMemory(h.m, h.engine);
  });

  it('507 also for ops replayed after a load that filled the shard', () => {
    const h = new EngineHarness({ capacity: 2, maxUsers: 2 });
    const v1 = h.run([ack(A, 1n, 1n), ack(A, 2n, 1n)])[0].states[0].version;
    h.evictAll();
    const loadsBefore = h.engine.counters.loads;
    const t = h.step([ack(A, 3n, 1n), get(A, 1n), ack(A, 1n, 2n)]);
    expect(h.results.size, 'parked behind the load').toBe(0);
    h.drain();
    const got = t.map((x) => summary(h.take(x)));
    expectRanked(got, [
      [ResultStatus.InsufficientStorage, false, undefined, undefined, undefined],
      [ResultStatus.Ok, false, '1', 0, 1],
      [ResultStatus.Ok, true, '2', 0, 2],
    ]);
    expect(got[1][4]).toBe(v1);
    expect(h.engine.counters.loads - loadsBefore).toBe(1);
  });

  it('capacity 1: each user with a read state evicts the previous one', () => {
    const h = new EngineHarness({ capacity: 1, maxUsers: 4 });
    const versions: number[] = [];
    for (let i = 1n; i <= 20n; i++) {
      const r = h.one(ack(i, 1n, i));
      expect(r.status).toBe(ResultStatus.Ok);
      versions.push(r.states[0].version);
    }
    expect(h.engine.counters.evictions).toBe(19);
    for (let i = 1n; i <= 20n; i++) expect(summary(h.one(get(i, 1n)))).toEqual([ResultStatus.Ok, false, String(i), 0, versions[Number(i) - 1]]);
    expect(h.one(ack(20n, 2n, 1n)).status).toBe(ResultStatus.InsufficientStorage);
    verifyMemory(h.m, h.engine);
  });

  it('a miss that finds every user slot loading waits for a slot, keeping arrival order', () => {
    const h = new EngineHarness({ capacity: 8, maxUsers: 2 });
    h.store.put(C, { channelId: 1n, lastMessageId: 3n, mentionCount: 1, lastPinTimestamp: 0, flags: 0, version: 4 });
    const t = h.step([
      get(A, 1n),
      get(B, 1n),
      ack(C, 1n, 5n), // A and B hold both user slots, both loading
      get(A, 2n),
      mention(C, 1n, { count: 2 }),
      ack(C, 1n, 4n, { manual: true, mentionCount: 9 }),
      get(C, 1n),
    ]);
    expect(h.results.size, 'nothing can be answered before a load').toBe(0);
    h.drain();
    expect(t.map((x) => summary(h.take(x)))).toEqual([
      [ResultStatus.NotFound, false, undefined, undefined, undefined],
      [ResultStatus.NotFound, false, undefined, undefined, undefined],
      [ResultStatus.Ok, true, '5', 0, 5],
      [ResultStatus.NotFound, false, undefined, undefined, undefined],
      [ResultStatus.Ok, true, '5', 2, 6],
      [ResultStatus.Ok, true, '4', 9, 7],
      [ResultStatus.Ok, false, '4', 9, 7],
    ]);
    expect(h.engine.loading).toBe(0);
    verifyMemory(h.m, h.engine);
  });

  it('ops that waited for a user slot keep their order against ops of the same user that come later', () => {
    // One user slot. A's first op takes the slot once B's load is in; X's op cannot get one then,
    // and A's second op waits behind X's. A's third op arrives while A is loading: it must still
    // apply after the second (a manual ack back to 2, then a normal ack to 3).
    const X = 4n;
    const h = new EngineHarness({ capacity: 4, maxUsers: 1 });
    const t1 = h.step([get(B, 1n), ack(A, 1n, 1n), get(X, 1n), ack(A, 1n, 2n, { manual: true, mentionCount: 7 })]);
    const t2 = h.step([ack(A, 1n, 3n)]);
    h.drain();
    const order = h.delivered.filter((t) => t !== t1[0] && t !== t1[2]);
    expect(order, 'A completes in arrival order').toEqual([t1[1], t1[3], t2[0]]);
    expect(summary(h.take(t1[1]))).toEqual([ResultStatus.Ok, true, '1', 0, 1]);
    expect(summary(h.take(t1[3]))).toEqual([ResultStatus.Ok, true, '2', 7, 2]);
    expect(summary(h.take(t2[0]))).toEqual([ResultStatus.Ok, true, '3', 0, 3]);
    expect(summary(h.one(get(A, 1n)))).toEqual([ResultStatus.Ok, false, '3', 0, 3]);
    verifyMemory(h.m, h.engine);
  });

  it('a failed load answers the parked ops 503 and the user can be loaded again later', () => {
    let fail = true;
    const h = new EngineHarness({ capacity: 8, maxUsers: 2, loadOk: () => !fail });
    const r = h.run([ack(A, 1n, 5n), get(A, 1n)]);
    expect(r.map((x) => x.status)).toEqual([ResultStatus.Unavailable, ResultStatus.Unavailable]);
    expect(r.every((x) => !x.changed)).toBe(true);
    verifyMemory(h.m, h.engine);
    // The user must not stay stuck in the loading state: the next op asks for it again.
    fail = false;
    const again = h.step([get(A, 1n), ack(A, 1n, 6n)]);
    expect(h.loadsPending, 'a new load request goes out').toBe(true);
    h.drain();
    expect(again.map((t) => summary(h.take(t)))).toEqual([
      [ResultStatus.NotFound, false, undefined, undefined, undefined],
      [ResultStatus.Ok, true, '6', 0, 1],
    ]);
    // And its user slot was not leaked: two other users still fit at once.
    h.evictAll();
    const t = h.step([get(B, 1n), get(C, 1n)]);
    h.drain();
    expect(t.map((x) => h.take(x).status)).toEqual([ResultStatus.NotFound, ResultStatus.NotFound]);
    verifyMemory(h.m, h.engine);
  });
});

describe('field semantics at the boundaries', () => {
  it('acks compare message ids as unsigned 64-bit across the 2^32 boundary', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const seq: [bigint, boolean][] = [
      [0xffffffffn, true],
      [1n << 32n, true],
      [0xffffffffn, false], // behind: lo is larger but hi smaller
      [(1n << 32n) + 1n, true],
      [(2n << 32n) | 0n, true],
      [(1n << 32n) | 0xffffffffn, false],
      [U64_MAX - 1n, true],
      [U64_MAX, true],
      [U64_MAX, false],
      [1n << 63n, false],
    ];
    let version = 0;
    for (const [id, moves] of seq) {
      const r = h.one(ack(A, 1n, id, { mentionCount: 3 }));
      expect(r.changed, `ack ${id}`).toBe(moves);
      if (moves) expect(r.states[0].version, `ack ${id}`).toBeGreaterThan(version);
      else expect(r.states[0].version, `ack ${id}`).toBe(version);
      version = r.states[0].version;
    }
    expect(h.one(get(A, 1n)).states[0].lastMessageId).toBe(U64_MAX);
    // A manual ack goes backwards, to zero even.
    const back = summary(h.one(ack(A, 1n, 0n, { manual: true })));
    expect(back.slice(0, 4)).toEqual([ResultStatus.Ok, true, '0', 0]);
    expect(back[4]).toBeGreaterThan(version);
  });

  it('mentions saturate at 2^31-1 and do not count messages already read', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const got = [
      ack(A, 1n, 100n, { manual: true, mentionCount: MAX_MENTIONS - 3 }),
      mention(A, 1n, { count: 1000 }),
      mention(A, 1n, { count: 1000 }),
      ack(A, 1n, 100n, { manual: true, mentionCount: 0 }),
      mention(A, 1n, { messageId: 100n, count: 5 }),
      mention(A, 1n, { messageId: 99n, count: 5 }),
      mention(A, 1n, { messageId: 101n, count: 5 }),
    ].map((op) => summary(h.one(op)));
    expectRanked(got, [
      [ResultStatus.Ok, true, '100', MAX_MENTIONS - 3, 1],
      [ResultStatus.Ok, true, '100', MAX_MENTIONS, 2],
      [ResultStatus.Ok, false, '100', MAX_MENTIONS, 2],
      [ResultStatus.Ok, true, '100', 0, 3],
      [ResultStatus.Ok, false, '100', 0, 3],
      [ResultStatus.Ok, false, '100', 0, 3],
      [ResultStatus.Ok, true, '100', 5, 4],
    ]);
    // A mention of a message on a new read state creates it with the count.
    expect(summary(h.one(mention(A, 2n, { messageId: U64_MAX, count: 1000 }))).slice(0, 4)).toEqual([ResultStatus.Ok, true, '0', 1000]);
  });

  it('a mention without a body reports only whether it changed something', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const r1 = h.one(mention(A, 1n, { noBody: true, count: 1000 }));
    expect([r1.status, r1.changed, r1.states.length]).toEqual([ResultStatus.Ok, true, 0]);
    const acked = h.one(ack(A, 1n, 50n, { manual: true, mentionCount: 0 })).states[0].version;
    const r2 = h.one(mention(A, 1n, { noBody: true, messageId: 50n }));
    expect([r2.status, r2.changed, r2.states.length]).toEqual([ResultStatus.Ok, false, 0]);
    expect(summary(h.one(get(A, 1n)))).toEqual([ResultStatus.Ok, false, '50', 0, acked]);
  });

  it('pins only move forward (to 2^53-1), flags are set as given', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const pins: [number, number][] = [
      [0xffffffff, 0xffffffff],
      [2 ** 32, 2 ** 32],
      [5, 2 ** 32],
      [2 ** 53 - 1, 2 ** 53 - 1],
      [2 ** 53 - 2, 2 ** 53 - 1],
    ];
    const changes = pins.map(([pin, want]) => {
      const r = h.one(patch(A, 1n, { lastPinTimestamp: pin }));
      expect(r.states[0].lastPinTimestamp).toBe(want);
      return r.changed;
    });
    expect(changes).toEqual([true, true, false, true, false]);
    const v0 = h.one(get(A, 1n)).states[0].version;
    const f1 = h.one(patch(A, 1n, { flags: 0xffffffff }));
    expect([f1.changed, f1.states[0].flags]).toEqual([true, 0xffffffff]);
    expect(f1.states[0].version).toBeGreaterThan(v0);
    const f2 = h.one(patch(A, 1n, { flags: 0xffffffff, lastPinTimestamp: 1 }));
    expect([f2.changed, f2.states[0].version]).toEqual([false, f1.states[0].version]);
    const f3 = h.one(patch(A, 1n, { flags: 0 }));
    expect([f3.changed, f3.states[0].flags]).toEqual([true, 0]);
    expect(f3.states[0].version).toBeGreaterThan(f1.states[0].version);
    h.evictAll();
    const back = h.one(get(A, 1n)).states[0];
    expect([back.lastPinTimestamp, back.flags, back.version]).toEqual([2 ** 53 - 1, 0, f3.states[0].version]);
  });

  it('get-all orders channels as unsigned 64-bit ids (insertion sort and heap sort sizes)', () => {
    for (const n of [5, 24, 25, 60]) {
      const h = new EngineHarness({ capacity: 64, maxUsers: 2 });
      const ids = new Set<bigint>([U64_MAX, 1n, 1n << 32n, 0xffffffffn, 1n << 63n, (1n << 63n) - 1n]);
      let x = 0x9e3779b97f4a7c15n;
      while (ids.size < n) {
        x = (x * 6364136223846793005n + 1442695040888963407n) & U64_MAX;
        ids.add(x % 3n === 0n ? x & 0xffffffffn : x % 3n === 1n ? x & 0xffffffff00000000n : x);
      }
      const list = [...ids].slice(0, n);
      h.run(list.map((c) => ack(A, c, 1n)));
      const want = [...list].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      expect(h.one(getAll(A)).states.map((rs) => rs.channelId)).toEqual(want);
      h.evictAll();
      expect(h.one(getAll(A)).states.map((rs) => rs.channelId), 'after a reload').toEqual(want);
    }
  });

  it('loads and writes back every field at its extremes (versions and pins above 2^32)', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const big = {
      channelId: U64_MAX,
      lastMessageId: U64_MAX - 1n,
      mentionCount: MAX_MENTIONS,
      lastPinTimestamp: 2 ** 53 - 1,
      flags: 0xffffffff,
      version: 2 ** 32 + 5,
    };
    const small = {
      ...big,
      channelId: 1n << 32n,
      lastMessageId: 0xffffffffn,
      mentionCount: 7,
      lastPinTimestamp: 2 ** 32,
      // a timestamp far ahead of the clock (the year 2041): the shard's clock continues above it
      version: 2 ** 51,
    };
    h.store.put(A, big);
    h.store.put(A, small);
    expect(h.one(getAll(A)).states).toEqual([small, big]);
    const r = h.one(ack(A, U64_MAX, U64_MAX, { mentionCount: 0 }));
    const v1 = r.states[0].version;
    expect(v1).toBeGreaterThan(2 ** 51);
    expect(r.states[0]).toEqual({ ...big, lastMessageId: U64_MAX, mentionCount: 0, version: v1 });
    const v2 = h.one(mention(A, 1n << 32n, { count: 1 })).states[0].version;
    expect(v2).toBeGreaterThan(v1);
    expect(Number.isSafeInteger(v2)).toBe(true);
    h.evictAll();
    expect(h.store.statesOf(A)).toEqual([
      { ...small, mentionCount: 8, version: v2 },
      { ...big, lastMessageId: U64_MAX, mentionCount: 0, version: v1 },
    ]);
  });

  it('get-all of an unknown user is an empty 200', () => {
    const h = new EngineHarness({ capacity: 4, maxUsers: 2 });
    const r = h.one(getAll(U64_MAX));
    expect([r.status, r.changed, r.states]).toEqual([ResultStatus.Ok, false, []]);
  });
});
