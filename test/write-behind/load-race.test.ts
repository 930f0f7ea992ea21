/**
 * A store that reads and writes concurrently (Cassandra) can answer a load with what it held
 * before a write that it confirmed first. Once confirmed, the record is no longer pending, so the
 * overlay alone would install the stale row and the next flush would overwrite the confirmed
 * write. The write-behind keeps the records confirmed while a load of their user is in flight.
 */
import { expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { WriteBehind } from '../../workers/write-behind.js';
import { mentions, record } from '../support/store-records.js';
import { RecordKind, StoredWord } from '../../workers/protocol.js';
import { loadEach } from '../../workers/store/load-many.js';

/** Reads the inner store when the load starts, answers when released (a slow read replica). */
class SnapshotReadStore implements ReadStateStore {
  readonly name = 'snapshot-read';
  private releases: (() => void)[] = [];
  constructor(readonly inner: MemoryStore) {}
  open(): Promise<void> {
    return this.inner.open();
  }
  async load(lo: number, hi: number): Promise<Uint32Array> {
    const snapshot = await this.inner.load(lo, hi);
    await new Promise<void>((r) => this.releases.push(r));
    return snapshot;
  }
  apply(records: Uint32Array, count: number): Promise<void> {
    return this.inner.apply(records.slice(), count);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  /** Answers every load waiting. */
  answerLoad(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

const settle = () => new Promise((r) => setTimeout(r, 10));

it('a load answered after a write it did not see was confirmed still shows that write', async () => {
  const inner = new MemoryStore();
  await inner.apply(record(RecordKind.Write, 5, 1, 1, 10), 1);
  await inner.apply(record(RecordKind.Write, 5, 2, 1, 10), 1);
  const store = new SnapshotReadStore(inner);
  const wb = new WriteBehind(store);
  const loading = wb.load(5, 0);
  await settle(); // the read has happened
  const batch = new Uint32Array(StoredWord.Size * 3);
  batch.set(record(RecordKind.Write, 5, 1, 7, 20), 0); // newer channel 1
  batch.set(record(RecordKind.Delete, 5, 2, 0, 20), StoredWord.Size); // channel 2 deleted
  batch.set(record(RecordKind.Write, 6, 1, 9, 20), StoredWord.Size * 2); // another user: not part of the load
  wb.submit(batch, 3);
  expect(await wb.drain(5_000)).toBe(true); // confirmed: nothing pending any more
  store.answerLoad();
  expect(mentions(await loading)).toEqual({ 1: 7 });
  // The next load of the user starts after: it reads the store, which has everything.
  const again = wb.load(5, 0);
  await settle();
  store.answerLoad();
  expect(mentions(await again)).toEqual({ 1: 7 });
});

it('an older record confirmed after a newer one does not win over what the store returned', async () => {
  const inner = new MemoryStore();
  let releaseOld: (() => void) | null = null;
  // Its first write (the older record) is held until released; later ones go through.
  class HoldFirstWrite extends SnapshotReadStore {
    private first = true;
    override async apply(records: Uint32Array, count: number): Promise<void> {
      if (this.first) {
        this.first = false;
        await new Promise<void>((r) => (releaseOld = r));
      }
      return super.apply(records, count);
    }
  }
  const store = new HoldFirstWrite(inner);
  const wb = new WriteBehind(store, { batchSize: 1, concurrency: 2 });
  wb.submit(record(RecordKind.Write, 5, 1, 1, 10), 1); // in a store call, held
  await settle();
  wb.submit(record(RecordKind.Write, 5, 1, 3, 30), 1); // newer: its own entry, written at once
  await settle();
  const loading = wb.load(5, 0);
  await settle();
  releaseOld!(); // the older record is confirmed last, while the load is in flight
  expect(await wb.drain(5_000)).toBe(true);
  store.answerLoad();
  expect(mentions(await loading)).toEqual({ 1: 3 });
});

it('the same holds for users loaded together in one store call (loadMany)', async () => {
  const inner = new MemoryStore();
  await inner.apply(record(RecordKind.Write, 5, 1, 1, 10), 1);
  await inner.apply(record(RecordKind.Write, 8, 1, 3, 10), 1);
  const slow = new SnapshotReadStore(inner);
  let calls = 0;
  // One call for all users, as the store thread answers them.
  const store: ReadStateStore = Object.assign(slow, {
    loadMany: (users: Uint32Array) => {
      calls++;
      return loadEach(slow, users);
    },
  });
  const wb = new WriteBehind(store);
  wb.submit(record(RecordKind.Write, 8, 2, 4, 15), 1); // pending for user 8 (overlay)
  const loading = wb.loadMany(new Uint32Array([5, 0, 7, 0, 8, 0]));
  await settle();
  wb.submit(record(RecordKind.Write, 5, 1, 7, 20), 1);
  expect(await wb.drain(5_000)).toBe(true);
  slow.answerLoad();
  const [u5, u7, u8] = await loading;
  expect(calls).toBe(1);
  expect(mentions(u5)).toEqual({ 1: 7 });
  expect(mentions(u7)).toEqual({});
  expect(mentions(u8)).toEqual({ 1: 3, 2: 4 });
});
