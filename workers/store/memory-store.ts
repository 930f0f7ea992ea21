/**
 * In-process store for tests and for runs that need no durability: the same last-write-wins
 * contract as the durable stores, kept in Maps on the main thread (this is the backing store, not
 * the cache, so JS objects are fine here).
 */
import { RecordKind, RsWord, StoredWord, join53 } from '../protocol.js';
import type { ReadStateStore } from './store.js';
import { LoadedTombstones } from './tombstones.js';

interface Row {
  ts: number;
  deleted: boolean;
  rs: Uint32Array;
}

export class MemoryStore implements ReadStateStore {
  readonly name: string = 'memory';
  private readonly users = new Map<string, Map<string, Row>>();

  async open(): Promise<void> {}

  async load(userLo: number, userHi: number): Promise<Uint32Array> {
    const rows = this.users.get(userLo + ':' + userHi);
    const live = rows === undefined ? [] : [...rows.values()].filter((r) => !r.deleted);
    const tombs = new LoadedTombstones();
    if (rows !== undefined) for (const r of rows.values()) if (r.deleted) tombs.add(r.rs[RsWord.ChanLo], r.rs[RsWord.ChanHi], r.ts);
    const out = new Uint32Array((live.length + tombs.records) * RsWord.Size);
    for (let i = 0; i < live.length; i++) out.set(live[i].rs, i * RsWord.Size);
    tombs.writeTo(out, live.length * RsWord.Size);
    return out;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    this.applySync(records, count);
  }

  protected applySync(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const r = i * StoredWord.Size;
      const userKey = records[r + StoredWord.UserLo] + ':' + records[r + StoredWord.UserHi];
      const chanKey = records[r + StoredWord.Rs + RsWord.ChanLo] + ':' + records[r + StoredWord.Rs + RsWord.ChanHi];
      const ts = join53(records[r + StoredWord.TsLo], records[r + StoredWord.TsHi]);
      let rows = this.users.get(userKey);
      if (rows === undefined) {
        rows = new Map();
        this.users.set(userKey, rows);
      }
      const old = rows.get(chanKey);
      if (old !== undefined && old.ts >= ts) continue;
      rows.set(chanKey, {
        ts,
        deleted: records[r + StoredWord.Kind] === RecordKind.Delete,
        rs: records.slice(r + StoredWord.Rs, r + StoredWord.Rs + RsWord.Size),
      });
    }
  }

  async close(): Promise<void> {}

  /** Live read states held, for tests and stats. */
  get size(): number {
    let n = 0;
    for (const rows of this.users.values()) for (const row of rows.values()) if (!row.deleted) n++;
    return n;
  }
}
