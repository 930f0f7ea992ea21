/**
 * The shard's building blocks on their own: the open-addressing indexes (collisions, wrap-around,
 * backward-shift deletes, full tables), the intrusive LRU, and the slot allocators, each checked
 * against a plain model with fast-check (fixed seeds, so failures reproduce).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  chanBucketSlot,
  chanFind,
  chanIndexInsert,
  chanIndexRemove,
  bucketOf,
  movable,
  userFind,
  userIndexInsert,
  userIndexRemove,
} from '../../workers/hash-index.js';
import { lruAppend, lruHead, lruTouch, lruUnlink } from '../../workers/lru.js';
import {
  H_LRU_HEAD,
  H_LRU_TAIL,
  H_RS_COUNT,
  H_RS_FREE,
  H_RS_HWM,
  H_USER_COUNT,
  H_USER_FREE,
  H_USER_HWM,
  NIL,
  RS_DIRTY_BIT,
  USER_FREE,
  USER_RESIDENT,
  allocateShardBuffers,
  attachShardMemory,
  rsOwnerOf,
  tableSize,
  CHAN_INDEX_LOAD,
  USER_INDEX_LOAD,
  chanTagMask,
  type ShardMemory,
} from '../../workers/shard-memory.js';
import { rsAlloc, rsRelease, userAlloc, userRelease } from '../../workers/slots.js';

const SEED = 20240611;

function memory(capacity: number, maxUsers: number): ShardMemory {
  return attachShardMemory(allocateShardBuffers(capacity, maxUsers));
}

// ---- a generic view of both indexes ---------------------------------------------------------

/** A key of either index: the user index ignores `owner`. */
interface Key {
  owner: number;
  lo: number;
  hi: number;
}

interface IndexUnderTest {
  name: string;
  /** entries the index must hold at most (slots) */
  slots: number;
  table: Uint32Array;
  /** the slot a non-empty bucket points at */
  slotOf(bucket: number): number;
  setKey(slot: number, k: Key): void;
  keyOf(slot: number): Key;
  find(k: Key): number;
  insert(slot: number): void;
  remove(slot: number): void;
}

function userIndexUnderTest(m: ShardMemory): IndexUnderTest {
  return {
    name: 'user index',
    slots: m.maxUsers,
    table: m.userIndex,
    slotOf: (b) => b - 1,
    setKey(slot, k) {
      m.userLo[slot] = k.lo;
      m.userHi[slot] = k.hi;
    },
    keyOf: (slot) => ({ owner: 0, lo: m.userLo[slot], hi: m.userHi[slot] }),
    find: (k) => userFind(m, k.lo, k.hi),
    insert: (slot) => userIndexInsert(m, slot),
    remove: (slot) => userIndexRemove(m, slot),
  };
}

function chanIndexUnderTest(m: ShardMemory): IndexUnderTest {
  return {
    name: 'channel index',
    slots: m.capacity,
    table: m.chanIndex,
    slotOf: (b) => chanBucketSlot(m, b),
    setKey(slot, k) {
      // the DIRTY bit shares the owner word: the index must ignore it
      m.rsOwner[slot] = (k.owner + 1) | (slot % 2 === 0 ? RS_DIRTY_BIT : 0);
      m.rsChanLo[slot] = k.lo;
      m.rsChanHi[slot] = k.hi;
    },
    keyOf: (slot) => ({ owner: rsOwnerOf(m, slot), lo: m.rsChanLo[slot], hi: m.rsChanHi[slot] }),
    find: (k) => chanFind(m, k.owner, k.lo, k.hi),
    insert: (slot) => chanIndexInsert(m, slot),
    remove: (slot) => chanIndexRemove(m, slot),
  };
}

const keyStr = (k: Key): string => `${k.owner}/${k.lo}/${k.hi}`;

/**
 * The home bucket of a key, found through the index itself: insert it alone into an empty table
 * and see where it lands (so collisions can be forced without re-implementing the hash).
 */
function homeOf(ix: IndexUnderTest, k: Key): number {
  if (ix.table.some((b) => b !== 0)) throw new Error('homeOf needs an empty table');
  const saved = ix.keyOf(0);
  ix.setKey(0, k);
  ix.insert(0);
  const home = ix.table.findIndex((b) => b !== 0);
  if (home >= 0 && ix.slotOf(ix.table[home]) !== 0) throw new Error('a lone key at slot 0 decodes to another slot');
  ix.remove(0);
  ix.setKey(0, saved);
  if (home < 0 || ix.table.some((b) => b !== 0)) throw new Error('insert/remove of a lone key is broken');
  return home;
}

/** `n` distinct keys whose home buckets are `homes` in turn (wrap-around clusters, pile-ups). */
function keysWithHomes(ix: IndexUnderTest, homes: number[], n: number, owners: number, start: number): Key[] {
  const out: Key[] = [];
  const seen = new Set<string>();
  let x = start >>> 0;
  for (let i = 0; out.length < n; i++) {
    if (i > 1_000_000) throw new Error('could not find colliding keys');
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    // Keys that differ only in one half, or only in the owner, are the interesting neighbours.
    const k: Key = { owner: x % owners, lo: i % 3 === 0 ? 7 : x, hi: i % 3 === 1 ? 7 : Math.imul(x, 0x2545f491) >>> 0 };
    if (seen.has(keyStr(k))) continue;
    if (homeOf(ix, k) !== homes[out.length % homes.length]) continue;
    seen.add(keyStr(k));
    out.push(k);
  }
  return out;
}

/**
 * Checks the index against the model: every live key found at its slot, every other key absent,
 * exactly the live entries in the table, and the linear-probing invariant (no empty bucket between
 * an entry and its home) that backward-shift deletion must preserve.
 */
function checkIndex(ix: IndexUnderTest, live: Map<string, { key: Key; slot: number }>, pool: Key[]): void {
  for (const { key, slot } of live.values()) {
    const found = ix.find(key);
    if (found !== slot) throw new Error(`${ix.name}: ${keyStr(key)} at slot ${slot} found as ${found}`);
  }
  for (const k of pool) {
    if (!live.has(keyStr(k)) && ix.find(k) !== NIL) throw new Error(`${ix.name}: deleted key ${keyStr(k)} still found`);
  }
  const size = ix.table.length;
  let entries = 0;
  const saved = new Uint32Array(ix.table);
  for (let i = 0; i < ix.table.length; i++) {
    const b = ix.table[i];
    if (b === 0) continue;
    entries++;
    const slot = ix.slotOf(b);
    const k = ix.keyOf(slot);
    if (live.get(keyStr(k))?.slot !== slot) throw new Error(`${ix.name}: bucket ${i} holds a dead slot ${slot}`);
    // Its home: probe from where a lone copy would land (computed on a scratch table).
    ix.table.fill(0);
    const home = homeOf(ix, k);
    ix.table.set(saved);
    for (let j = home; j !== i; j = (j + 1) % size) {
      if (ix.table[j] === 0) throw new Error(`${ix.name}: empty bucket ${j} between home ${home} and entry at ${i}`);
    }
  }
  if (entries !== live.size) throw new Error(`${ix.name}: ${entries} entries for ${live.size} live keys`);
}

type IndexCmd = { kind: 'insert' | 'delete' | 'removeAbsent'; key: number; slotPick: number };

function runIndexCommands(ix: IndexUnderTest, pool: Key[], cmds: IndexCmd[]): void {
  ix.table.fill(0);
  const live = new Map<string, { key: Key; slot: number }>();
  const free: number[] = [];
  for (let s = ix.slots - 1; s >= 0; s--) free.push(s);
  for (const c of cmds) {
    const key = pool[c.key % pool.length];
    const entry = live.get(keyStr(key));
    if (c.kind === 'insert' && entry === undefined && free.length > 0) {
      const slot = free.splice(c.slotPick % free.length, 1)[0];
      ix.setKey(slot, key);
      ix.insert(slot);
      live.set(keyStr(key), { key, slot });
    } else if (c.kind === 'delete' && entry !== undefined) {
      ix.remove(entry.slot);
      live.delete(keyStr(key));
      free.push(entry.slot);
    } else if (c.kind === 'removeAbsent' && entry === undefined && free.length > 0) {
      // Removing a key that is not in the table must leave the table alone.
      const slot = free[c.slotPick % free.length];
      ix.setKey(slot, key);
      const before = new Uint32Array(ix.table);
      ix.remove(slot);
      expect(ix.table).toEqual(before);
    }
    checkIndex(ix, live, pool);
  }
}

const indexCmd = fc.record({
  kind: fc.constantFrom<IndexCmd['kind']>('insert', 'insert', 'delete', 'removeAbsent'),
  key: fc.nat(),
  slotPick: fc.nat(),
});

describe('hash indexes', () => {
  it('movable() matches the cyclic-interval definition for every (hole, entry, home)', () => {
    for (const size of [2, 3, 4, 7, 8, 13, 16]) {
      const cyc = (d: number) => ((d % size) + size) % size;
      for (let i = 0; i < size; i++) {
        for (let j = 0; j < size; j++) {
          if (i === j) continue;
          for (let home = 0; home < size; home++) {
            // The entry at j may fill the hole at i iff i lies on its probe path, i.e. from home to j.
            const want = cyc(j - home) >= cyc(j - i);
            expect(movable(i, j, home), `size ${size} hole ${i} entry ${j} home ${home}`).toBe(want);
          }
        }
      }
    }
  });

  it('an index costs the same per entry whatever the capacity (no jump to the next power of two)', () => {
    for (const c of [1_000_000, (1 << 23) + 1, 10_000_000, 10_500_000, 16_777_216, 50_000_000]) {
      const chanBytes = (tableSize(c, CHAN_INDEX_LOAD) * 4) / c;
      expect(chanBytes, `capacity ${c}`).toBeGreaterThan(5.0);
      expect(chanBytes, `capacity ${c}`).toBeLessThan(5.02);
      const userBytes = (tableSize(c, USER_INDEX_LOAD) * 4) / c;
      expect(userBytes, `capacity ${c}`).toBeGreaterThan(5.7);
      expect(userBytes, `capacity ${c}`).toBeLessThan(5.72);
    }
  });

  it('a channel-index bucket keeps every slot of the capacity below its tag bits', () => {
    for (const c of [1, 2, 3, 255, 256, 1 << 20, 10_500_000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]) {
      const tag = chanTagMask(c);
      const slotMask = ~tag >>> 0;
      // slot + 1 runs up to the capacity: it must fit under the tag, and the tag must use the rest
      expect((c & tag) >>> 0, `capacity ${c}`).toBe(0);
      expect(slotMask >= c && slotMask < 2 * c, `capacity ${c}: slot bits ${slotMask.toString(16)}`).toBe(true);
      expect((tag | slotMask) >>> 0).toBe(0xffffffff);
    }
  });

  it('bucketOf maps every hash into [0, size), evenly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 2 ** 27 }), fc.integer({ min: 0, max: 0xffffffff }), (size, h) => {
        const b = bucketOf(h, size);
        return Number.isInteger(b) && b >= 0 && b < size;
      }),
      { seed: SEED, numRuns: 2000 },
    );
    for (const size of [2, 3, 1000, 14_285_716, 2 ** 27 + 7]) {
      expect(bucketOf(0, size)).toBe(0);
      expect(bucketOf(0xffffffff, size)).toBe(size - 1);
    }
    // 65,536 evenly spaced hashes over 7 buckets: each gets 9,362 or 9,363.
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 65536; i++) counts[bucketOf(i * 65536, 7)]++;
    for (const n of counts) expect(Math.abs(n - 65536 / 7)).toBeLessThan(1);
  });

  const shapes: { capacity: number; maxUsers: number }[] = [
    { capacity: 1, maxUsers: 1 },
    { capacity: 3, maxUsers: 2 },
    { capacity: 8, maxUsers: 4 },
    { capacity: 12, maxUsers: 9 },
  ];

  for (const { capacity, maxUsers } of shapes) {
    for (const which of ['user', 'channel'] as const) {
      it(`${which} index, ${which === 'user' ? maxUsers : capacity} slots: random inserts/deletes agree with a Map`, () => {
        const m = memory(capacity, maxUsers);
        const ix = which === 'user' ? userIndexUnderTest(m) : chanIndexUnderTest(m);
        const last = ix.table.length - 1;
        expect(ix.table.length).toBe(tableSize(ix.slots, which === 'user' ? USER_INDEX_LOAD : CHAN_INDEX_LOAD));
        // Half the pool piles onto the last bucket and the first (clusters that wrap around),
        // the other half is spread out.
        const piled = keysWithHomes(ix, [last, last, 0], ix.slots + 2, which === 'user' ? 1 : maxUsers, 11);
        const spread = keysWithHomes(ix, [...Array(ix.table.length).keys()], ix.slots + 2, which === 'user' ? 1 : maxUsers, 99);
        const pool = [...piled, ...spread];
        fc.assert(
          fc.property(fc.array(indexCmd, { minLength: 1, maxLength: 120 }), (cmds) => {
            runIndexCommands(ix, pool, cmds);
          }),
          { seed: SEED, numRuns: 150 },
        );
      });
    }
  }

  it('a full channel index whose keys all share one home: delete in every order', () => {
    const m = memory(9, 2); // 9 slots, 13 buckets
    const ix = chanIndexUnderTest(m);
    const last = ix.table.length - 1;
    const pool = keysWithHomes(ix, [last - 1], ix.slots, 2, 5); // one cluster wrapping the end
    fc.assert(
      fc.property(fc.shuffledSubarray([...pool.keys()], { minLength: pool.length, maxLength: pool.length }), (order) => {
        const cmds: IndexCmd[] = [
          ...pool.map((_, i) => ({ kind: 'insert' as const, key: i, slotPick: i * 7 })),
          ...order.map((i) => ({ kind: 'delete' as const, key: i, slotPick: 0 })),
        ];
        runIndexCommands(ix, pool, cmds);
        expect(ix.table.every((b) => b === 0)).toBe(true);
      }),
      { seed: SEED, numRuns: 100 },
    );
  });

  it('filled to every slot with spread keys, then emptied and refilled', () => {
    const m = memory(20, 20);
    for (const [ix, owners] of [
      [userIndexUnderTest(m), 1],
      [chanIndexUnderTest(m), 3],
    ] as const) {
      const pool = keysWithHomes(ix, [3, 3, 4, 9, ix.table.length - 1], 2 * ix.slots, owners, 1);
      const first = pool.slice(0, ix.slots).map((_, i) => ({ kind: 'insert' as const, key: i, slotPick: 0 }));
      const clear = pool.slice(0, ix.slots).map((_, i) => ({ kind: 'delete' as const, key: i, slotPick: 0 }));
      const second = pool.slice(ix.slots).map((_, i) => ({ kind: 'insert' as const, key: ix.slots + i, slotPick: 3 }));
      runIndexCommands(ix, pool, [...first, ...clear, ...second]);
    }
  });

  it('the channel index keeps the same channel of different owners apart', () => {
    const m = memory(8, 4);
    const ix = chanIndexUnderTest(m);
    const pool: Key[] = [0, 1, 2, 3].flatMap((owner) => [
      { owner, lo: 5, hi: 0 },
      { owner, lo: 0, hi: 5 },
    ]);
    const cmds: IndexCmd[] = [
      ...pool.map((_, i) => ({ kind: 'insert' as const, key: i, slotPick: 0 })),
      { kind: 'delete', key: 2, slotPick: 0 },
      { kind: 'delete', key: 5, slotPick: 0 },
      { kind: 'insert', key: 2, slotPick: 1 },
    ];
    runIndexCommands(ix, pool, cmds);
  });
});

// ---- LRU ------------------------------------------------------------------------------------

type LruCmd = { kind: 'append' | 'unlink' | 'touch'; user: number };

function checkLru(m: ShardMemory, model: number[]): void {
  const h = m.header;
  expect(lruHead(m)).toBe(model.length === 0 ? NIL : model[0]);
  expect(h[H_LRU_HEAD]).toBe(model.length === 0 ? 0 : model[0] + 1);
  expect(h[H_LRU_TAIL]).toBe(model.length === 0 ? 0 : model[model.length - 1] + 1);
  const forward: number[] = [];
  for (let u = lruHead(m); u !== NIL && forward.length <= m.maxUsers; u = m.userNext[u]) forward.push(u);
  expect(forward).toEqual(model);
  const backward: number[] = [];
  for (let u = h[H_LRU_TAIL] - 1; u !== -1 && u !== NIL && backward.length <= m.maxUsers; u = m.userPrev[u]) {
    backward.push(u);
  }
  expect(backward).toEqual([...model].reverse());
}

describe('LRU', () => {
  for (const maxUsers of [1, 2, 3, 8]) {
    it(`${maxUsers} user slots: appends, unlinks and touches agree with an array`, () => {
      fc.assert(
        fc.property(
          fc.array(
            fc.record({ kind: fc.constantFrom<LruCmd['kind']>('append', 'unlink', 'touch'), user: fc.nat(maxUsers - 1) }),
            { minLength: 1, maxLength: 80 },
          ),
          (cmds) => {
            const m = memory(1, maxUsers);
            const model: number[] = [];
            checkLru(m, model);
            for (const c of cmds) {
              const at = model.indexOf(c.user);
              if (c.kind === 'append' && at < 0) {
                lruAppend(m, c.user);
                model.push(c.user);
              } else if (c.kind === 'unlink' && at >= 0) {
                lruUnlink(m, c.user);
                model.splice(at, 1);
                expect([m.userPrev[c.user], m.userNext[c.user]]).toEqual([NIL, NIL]);
              } else if (c.kind === 'touch' && at >= 0) {
                lruTouch(m, c.user);
                model.splice(at, 1);
                model.push(c.user);
              } else {
                continue;
              }
              checkLru(m, model);
            }
          },
        ),
        { seed: SEED, numRuns: 300 },
      );
    });
  }

  it('touching the head moves it to the tail and the next user becomes the victim', () => {
    const m = memory(1, 4);
    for (const u of [2, 0, 3, 1]) lruAppend(m, u);
    lruTouch(m, 2);
    checkLru(m, [0, 3, 1, 2]);
    lruTouch(m, 2); // already most recent
    checkLru(m, [0, 3, 1, 2]);
    lruTouch(m, 3); // from the middle
    checkLru(m, [0, 1, 2, 3]);
    lruUnlink(m, 0);
    lruUnlink(m, 3);
    checkLru(m, [1, 2]);
    lruUnlink(m, 1);
    lruUnlink(m, 2);
    checkLru(m, []);
  });
});

// ---- slot allocators ------------------------------------------------------------------------

interface Allocator {
  capacity: number;
  alloc(): number;
  release(s: number): void;
  hwm(): number;
  count(): number;
  freeHead(): number;
  nextFree(s: number): number;
}

function rsAllocator(m: ShardMemory): Allocator {
  return {
    capacity: m.capacity,
    alloc: () => rsAlloc(m),
    release: (s) => rsRelease(m, s),
    hwm: () => m.header[H_RS_HWM],
    count: () => m.header[H_RS_COUNT],
    freeHead: () => m.header[H_RS_FREE],
    nextFree: (s) => m.rsNext[s],
  };
}

function userAllocator(m: ShardMemory): Allocator {
  return {
    capacity: m.maxUsers,
    alloc: () => {
      const u = userAlloc(m);
      if (u !== NIL) m.userState[u] = USER_RESIDENT; // as the engine does on a miss
      return u;
    },
    release: (u) => {
      userRelease(m, u);
      expect(m.userState[u]).toBe(USER_FREE);
    },
    hwm: () => m.header[H_USER_HWM],
    count: () => m.header[H_USER_COUNT],
    freeHead: () => m.header[H_USER_FREE],
    nextFree: (u) => m.userNext[u],
  };
}

function freeList(a: Allocator): number[] {
  const out: number[] = [];
  for (let f = a.freeHead(); f !== 0 && out.length <= a.capacity; ) {
    out.push(f - 1);
    const next = a.nextFree(f - 1);
    f = next === NIL ? 0 : next + 1;
  }
  return out;
}

describe('slot allocators', () => {
  for (const capacity of [1, 2, 5, 16]) {
    for (const which of ['read-state', 'user'] as const) {
      it(`${which} slots, capacity ${capacity}: never hands out a live slot; counts and free list add up`, () => {
        fc.assert(
          fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat()), { minLength: 1, maxLength: 100 }), (cmds) => {
            const m = memory(capacity, capacity);
            const a = which === 'read-state' ? rsAllocator(m) : userAllocator(m);
            const live = new Set<number>();
            const released = new Set<number>();
            for (const [doAlloc, pick] of cmds) {
              if (doAlloc) {
                const hwmBefore = a.hwm();
                const s = a.alloc();
                if (live.size === a.capacity) {
                  expect(s).toBe(NIL);
                } else {
                  expect(s).not.toBe(NIL);
                  expect(s).toBeGreaterThanOrEqual(0);
                  expect(s).toBeLessThan(a.capacity);
                  expect(live.has(s), `slot ${s} handed out twice`).toBe(false);
                  if (released.size > 0) {
                    // Reuse before touching fresh slots: untouched pages stay untouched.
                    expect(released.has(s)).toBe(true);
                    expect(a.hwm()).toBe(hwmBefore);
                    released.delete(s);
                  } else {
                    expect(s).toBe(hwmBefore);
                    expect(a.hwm()).toBe(hwmBefore + 1);
                  }
                  live.add(s);
                }
              } else if (live.size > 0) {
                const s = [...live][pick % live.size];
                a.release(s);
                live.delete(s);
                released.add(s);
              }
              expect(a.count()).toBe(live.size);
              expect(a.hwm()).toBeLessThanOrEqual(a.capacity);
              expect(new Set(freeList(a))).toEqual(released);
              expect(freeList(a).length).toBe(released.size);
              expect(a.hwm()).toBe(live.size + released.size);
            }
          }),
          { seed: SEED, numRuns: 200 },
        );
      });
    }
  }
});
