import { describe, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { WriteBehind } from '../../workers/write-behind.js';
import { mentions, record, tombstones } from '../support/store-records.js';
import { RecordKind } from '../../workers/protocol.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { FaultyStore } from '../support/faulty-store.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('WriteBehind', () => {
  it('calls onIdle once per idle period that followed work, not while it stays idle or holds records', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    let idle = 0;
    const wb = new WriteBehind(store, { poolSize: 16, shrinkIdleMs: 0, onIdle: () => idle++ });
    expect(wb.shrinkIfIdle()).toBe(false);
    expect(wb.shrinkIfIdle()).toBe(false);
    expect(idle).toBe(0); // idle from the start, nothing taken: nothing to collect
    store.holding = true;
    wb.submit(record(RecordKind.Write, 3, 1, 1, 1), 1);
    wb.shrinkIfIdle();
    wb.shrinkIfIdle();
    expect(idle).toBe(0); // the record is still held by the store
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    wb.shrinkIfIdle(); // empty at one check only
    expect(idle).toBe(0);
    wb.shrinkIfIdle();
    expect(idle).toBe(1);
    wb.shrinkIfIdle();
    wb.shrinkIfIdle();
    expect(idle).toBe(1); // still idle: once
    await wb.loadMany(new Uint32Array([3, 0]));
    wb.shrinkIfIdle();
    wb.shrinkIfIdle();
    expect(idle).toBe(2); // loads leave garbage too
    wb.close();
  });

  it('does not call onIdle (or shrink) while loads and writes keep coming, even with the pool empty at every check', async () => {
    let idle = 0;
    const wb = new WriteBehind(new MemoryStore(), { poolSize: 16, shrinkIdleMs: 0, onIdle: () => idle++ });
    for (let c = 1; c <= 200; c++) wb.submit(record(RecordKind.Write, 3, c, c, c), 1);
    expect(await wb.drain(1000)).toBe(true);
    const grown = wb.poolSize;
    expect(grown).toBeGreaterThan(16);
    for (let period = 0; period < 6; period++) {
      // steady traffic: between two checks a user is loaded, or a record comes and is written
      if (period % 2 === 0) await wb.loadMany(new Uint32Array([3, 0]));
      else {
        wb.submit(record(RecordKind.Write, 4, period, period, period), 1);
        expect(await wb.drain(1000)).toBe(true);
      }
      expect(wb.shrinkIfIdle()).toBe(false);
    }
    expect(idle).toBe(0);
    expect(wb.poolSize).toBe(grown);
    // then a whole period with nothing: idle once
    wb.shrinkIfIdle();
    expect(idle).toBe(1);
    expect(wb.poolSize).toBe(16);
    wb.close();
  });

  it('the pending pool grows under a backlog and shrinks back once idle for a whole check period, losing nothing', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    store.holding = true;
    const wb = new WriteBehind(store, { poolSize: 16, shrinkIdleMs: 0 });
    for (let c = 1; c <= 200; c++) wb.submit(record(RecordKind.Write, 3, c, c, c), 1);
    expect(wb.poolSize).toBe(256);
    expect(wb.shrinkIfIdle()).toBe(false); // records held: never
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    expect(wb.shrinkIfIdle()).toBe(false); // empty at one check only
    expect(wb.poolSize).toBe(256);
    expect(wb.shrinkIfIdle()).toBe(true);
    expect(wb.poolSize).toBe(16);
    // The shrunk pool works: overlay, coalescing, and growth again.
    store.holding = true;
    for (let c = 1; c <= 40; c++) wb.submit(record(RecordKind.Write, 3, c, 1000 + c, 1000 + c), 1);
    wb.submit(record(RecordKind.Write, 3, 1, 5, 2000), 1);
    const loaded = mentions(await wb.load(3, 0));
    expect(loaded[1]).toBe(5);
    expect(loaded[40]).toBe(1040);
    expect(loaded[200]).toBe(200);
    expect(wb.poolSize).toBe(64);
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    expect(mentions(await inner.load(3, 0))).toMatchObject({ 1: 5, 40: 1040, 41: 41, 200: 200 });
    wb.close();
  });

  it('a load sees pending writes and deletes before the store confirms them', async () => {
    const inner = new MemoryStore();
    await inner.apply(record(RecordKind.Write, 1, 7, 1, 1), 1);
    await inner.apply(record(RecordKind.Write, 1, 8, 1, 2), 1);
    const store = new FaultyStore(inner);
    store.holding = true;
    const wb = new WriteBehind(store);
    wb.submit(record(RecordKind.Write, 1, 7, 5, 10), 1);
    wb.submit(record(RecordKind.Delete, 1, 8, 0, 11), 1);
    wb.submit(record(RecordKind.Write, 1, 9, 3, 12), 1);
    expect(mentions(await inner.load(1, 0))).toEqual({ 7: 1, 8: 1 });
    expect(mentions(await wb.load(1, 0))).toEqual({ 7: 5, 9: 3 });
    // the pending delete comes back as a tombstone with its timestamp (delta sync reports it)
    expect(tombstones(await wb.load(1, 0))).toEqual({ 8: 11 });
    expect(wb.pendingRecords).toBe(3);
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    expect(wb.pendingRecords).toBe(0);
    expect(mentions(await inner.load(1, 0))).toEqual({ 7: 5, 9: 3 });
    expect(tombstones(await inner.load(1, 0))).toEqual({ 8: 11 });
  });

  it('keeps everything through a store outage, says so, retries with backoff, and writes it all after', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    store.failing = true;
    const states: boolean[] = [];
    const wb = new WriteBehind(store, { backoffMs: 5, maxBackoffMs: 20, batchSize: 10, onStateChange: (d) => states.push(d) });
    for (let c = 1; c <= 100; c++) wb.submit(record(RecordKind.Write, 2, c, c, c), 1);
    await tick();
    expect(wb.degraded).toBe(true);
    expect(wb.storeFailing).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(wb.stats().retries).toBeGreaterThan(1);
    expect(wb.pendingRecords).toBe(100);
    expect(mentions(await wb.load(2, 0).catch(() => new Uint32Array(0)))).toEqual({}); // loads fail while down
    store.failing = false;
    expect(await wb.drain(2000)).toBe(true);
    expect(wb.degraded).toBe(false);
    expect(states).toEqual([true, false]);
    const loaded = mentions(await inner.load(2, 0));
    expect(Object.keys(loaded)).toHaveLength(100);
    expect(loaded[77]).toBe(77);
  });

  it('a newer record that arrives while an older one is in flight stays pending and wins', async () => {
    const inner = new MemoryStore();
    const store = new FaultyStore(inner);
    store.holding = true;
    const wb = new WriteBehind(store, { lingerMs: 0 });
    wb.submit(record(RecordKind.Write, 3, 1, 1, 100), 1);
    await tick(); // the first write is now in flight (held)
    wb.submit(record(RecordKind.Write, 3, 1, 2, 101), 1);
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    expect(mentions(await inner.load(3, 0))).toEqual({ 1: 2 });
    expect(wb.stats().written).toBe(2);
  });

  it('reports degraded once the backlog passes its bound', async () => {
    const store = new FaultyStore(new MemoryStore());
    store.holding = true;
    const wb = new WriteBehind(store, { maxPending: 10 });
    for (let c = 1; c <= 9; c++) wb.submit(record(RecordKind.Write, 4, c, 1, c), 1);
    expect(wb.degraded).toBe(false);
    wb.submit(record(RecordKind.Write, 4, 10, 1, 10), 1);
    expect(wb.degraded).toBe(true);
    expect(wb.storeFailing).toBe(false);
    store.release();
    expect(await wb.drain(1000)).toBe(true);
    expect(wb.degraded).toBe(false);
  });

  it('drain gives up at its timeout while the store is down', async () => {
    const store = new FaultyStore(new MemoryStore());
    store.failing = true;
    const wb = new WriteBehind(store, { backoffMs: 5 });
    wb.submit(record(RecordKind.Write, 5, 1, 1, 1), 1);
    expect(await wb.drain(50)).toBe(false);
    wb.close();
  });

  it('a success that ends an outage cancels the scheduled retry: one recovery, no extra probe', async () => {
    const inner = new MemoryStore();
    const calls: { ok: () => void; fail: () => void }[] = [];
    const store: ReadStateStore = {
      name: 'controlled',
      open: () => inner.open(),
      load: (lo, hi) => inner.load(lo, hi),
      close: () => inner.close(),
      apply: (records, count) =>
        new Promise<void>((resolve, reject) => {
          const copy = records.slice();
          calls.push({ ok: () => void inner.apply(copy, count).then(resolve, reject), fail: () => reject(new Error('store down (injected)')) });
        }),
    };
    const states: boolean[] = [];
    const wb = new WriteBehind(store, { batchSize: 1, concurrency: 2, backoffMs: 30, onStateChange: (d) => states.push(d) });
    wb.submit(record(RecordKind.Write, 6, 1, 1, 1), 1);
    wb.submit(record(RecordKind.Write, 6, 2, 1, 2), 1);
    expect(calls).toHaveLength(2);
    calls[0].fail(); // the outage starts: a retry is scheduled 30 ms out
    await tick();
    calls[1].ok(); // another batch gets through: recovered, the failed record goes out again
    await tick();
    expect(states).toEqual([true, false]);
    expect(calls).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 80)); // well past the retry's time
    expect(wb.stats().retries).toBe(0);
    expect(states).toEqual([true, false]);
    expect(calls).toHaveLength(3);
    calls[2].ok();
    expect(await wb.drain(1000)).toBe(true);
    expect(mentions(await inner.load(6, 0))).toEqual({ 1: 1, 2: 1 });
  });
  describe('linger', () => {
    it('a batch smaller than batchSize waits for more records, then goes as one write', async () => {
      const inner = new MemoryStore();
      const store = new FaultyStore(inner);
      const wb = new WriteBehind(store, { batchSize: 10, lingerMs: 1_000 });
      for (let c = 1; c <= 3; c++) wb.submit(record(RecordKind.Write, 3, c, c, 100 + c), 1);
      await new Promise((r) => setImmediate(r));
      expect(store.applyCalls).toBe(0);
      const deadline = Date.now() + 10_000;
      while (store.applyCalls === 0 && Date.now() < deadline) await tick();
      expect(store.applyCalls).toBe(1);
      expect(wb.stats().lastBatchSize).toBe(3);
      expect(await wb.drain(1_000)).toBe(true);
      expect(mentions(await inner.load(3, 0))).toEqual({ 1: 1, 2: 2, 3: 3 });
      wb.close();
    });

    it('a full batch goes at once; only the rest lingers', async () => {
      const inner = new MemoryStore();
      const store = new FaultyStore(inner);
      const wb = new WriteBehind(store, { batchSize: 4, lingerMs: 10_000 });
      for (let c = 1; c <= 6; c++) wb.submit(record(RecordKind.Write, 5, c, 1, 200 + c), 1);
      await tick();
      expect(store.applyCalls).toBe(1);
      expect(wb.stats().written).toBe(4);
      expect(wb.stats().pending).toBe(2);
      wb.close();
    });

    it('drain() sends what lingers at once', async () => {
      const inner = new MemoryStore();
      const store = new FaultyStore(inner);
      const wb = new WriteBehind(store, { batchSize: 500, lingerMs: 10_000 });
      wb.submit(record(RecordKind.Write, 7, 1, 4, 300), 1);
      wb.submit(record(RecordKind.Write, 7, 2, 5, 301), 1);
      await tick();
      expect(store.applyCalls).toBe(0);
      const started = Date.now();
      expect(await wb.drain(5_000)).toBe(true);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(mentions(await inner.load(7, 0))).toEqual({ 1: 4, 2: 5 });
      wb.close();
    });

    it('the default lingers', async () => {
      const store = new FaultyStore(new MemoryStore());
      const wb = new WriteBehind(store);
      wb.submit(record(RecordKind.Write, 9, 1, 1, 400), 1);
      await new Promise((r) => setImmediate(r));
      expect(store.applyCalls).toBe(0);
      expect(await wb.drain(5_000)).toBe(true);
      expect(store.applyCalls).toBe(1);
      wb.close();
    });
  });
});
