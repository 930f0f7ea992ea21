/**
 * Loads of many users in one store call. A batch that creates or wakes a thousand users misses a
 * thousand times; one call per user is one thread hand-off each way per user, which made cold
 * users ten times slower than cached ones. Users travel as (lo, hi) pairs; the answer packs, per
 * user in the same order, [n, n * RsWord.Size read-state words].
 */
import { RsWord } from '../protocol.js';
import type { ReadStateStore } from './store.js';

/** Runs store.load for every user at once (an asynchronous store overlaps them) and packs the answers. */
export async function loadEach(store: Pick<ReadStateStore, 'load'>, users: Uint32Array): Promise<Uint32Array> {
  const loads: Promise<Uint32Array>[] = [];
  for (let i = 0; i < users.length; i += 2) loads.push(store.load(users[i], users[i + 1]));
  const parts = await Promise.all(loads);
  let words = 0;
  for (const p of parts) words += 1 + p.length;
  const out = new Uint32Array(words);
  let at = 0;
  for (const p of parts) {
    out[at++] = p.length / RsWord.Size;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One view per user of a packed answer (no copy). */
export function unpackLoads(packed: Uint32Array, users: number): Uint32Array[] {
  const out = new Array<Uint32Array>(users);
  let at = 0;
  for (let u = 0; u < users; u++) {
    const n = packed[at++] * RsWord.Size;
    out[u] = packed.subarray(at, at + n);
    at += n;
  }
  if (at !== packed.length) throw new Error(`packed loads: ${packed.length} words, ${at} read for ${users} users`);
  return out;
}
