/**
 * In-process store: read states of evicted users wait here until the user comes back. It is what
 * tests use and what `npm start` runs on until a durable store is configured; it lives on the main
 * thread (a JS Map per user is fine here: this is the backing store, not the cache).
 */
import { RS_WORDS, R_CHAN_HI, R_CHAN_LO, STORED_WORDS, S_KIND, S_RS, S_USER_HI, S_USER_LO, KIND_DELETE } from '../../workers/protocol.js';
import type { ReadStateStore } from './store.js';

const EMPTY = new Uint32Array(0);

export class MemoryStore implements ReadStateStore {
  readonly name = 'memory';
  private readonly users = new Map<string, Map<string, Uint32Array>>();

  async open(): Promise<void> {}

  async load(userLo: number, userHi: number): Promise<Uint32Array> {
    const states = this.users.get(userLo + ':' + userHi);
    if (states === undefined || states.size === 0) return EMPTY;
    const out = new Uint32Array(states.size * RS_WORDS);
    let at = 0;
    for (const rs of states.values()) {
      out.set(rs, at);
      at += RS_WORDS;
    }
    return out;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const r = i * STORED_WORDS;
      const userKey = records[r + S_USER_LO] + ':' + records[r + S_USER_HI];
      const chanKey = records[r + S_RS + R_CHAN_LO] + ':' + records[r + S_RS + R_CHAN_HI];
      let states = this.users.get(userKey);
      if (records[r + S_KIND] === KIND_DELETE) {
        if (states !== undefined) {
          states.delete(chanKey);
          if (states.size === 0) this.users.delete(userKey);
        }
        continue;
      }
      if (states === undefined) {
        states = new Map();
        this.users.set(userKey, states);
      }
      states.set(chanKey, records.slice(r + S_RS, r + S_RS + RS_WORDS));
    }
  }

  async close(): Promise<void> {}

  /** Read states held, for tests and stats. */
  get size(): number {
    let n = 0;
    for (const s of this.users.values()) n += s.size;
    return n;
  }
}
