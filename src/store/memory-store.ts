/**
 * In-process store for tests and for runs that need no durability: the same last-write-wins
 * contract as the durable stores, kept in Maps on the main thread (this is the backing store, not
 * the cache, so JS objects are fine here).
 */
import {
  KIND_DELETE,
  RS_WORDS,
  R_CHAN_HI,
  R_CHAN_LO,
  STORED_WORDS,
  S_KIND,
  S_RS,
  S_TS_HI,
  S_TS_LO,
  S_USER_HI,
  S_USER_LO,
  join53,
} from '../../workers/protocol.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { LoadedTombstones } from '../../workers/store/tombstones.js';

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
    if (rows !== undefined) for (const r of rows.values()) if (r.deleted) tombs.add(r.rs[R_CHAN_LO], r.rs[R_CHAN_HI], r.ts);
    const out = new Uint32Array((live.length + tombs.records) * RS_WORDS);
    for (let i = 0; i < live.length; i++) out.set(live[i].rs, i * RS_WORDS);
    tombs.writeTo(out, live.length * RS_WORDS);
    return out;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    this.applySync(records, count);
  }

  protected applySync(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const r = i * STORED_WORDS;
      const userKey = records[r + S_USER_LO] + ':' + records[r + S_USER_HI];
      const chanKey = records[r + S_RS + R_CHAN_LO] + ':' + records[r + S_RS + R_CHAN_HI];
      const ts = join53(records[r + S_TS_LO], records[r + S_TS_HI]);
      let rows = this.users.get(userKey);
      if (rows === undefined) {
        rows = new Map();
        this.users.set(userKey, rows);
      }
      const old = rows.get(chanKey);
      if (old !== undefined && old.ts >= ts) continue;
      rows.set(chanKey, {
        ts,
        deleted: records[r + S_KIND] === KIND_DELETE,
        rs: records.slice(r + S_RS, r + S_RS + RS_WORDS),
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
