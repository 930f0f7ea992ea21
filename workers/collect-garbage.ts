/**
 * A full collection on demand, for a thread that has just turned idle after a burst (the store
 * thread once its write-back drained). V8 collects when a thread allocates; an idle thread does
 * not, so the ArrayBuffers a burst left behind (hundreds of MB after a fill) stay resident until
 * the next burst. `--expose-gc` set at run time gives new contexts a `gc` global; the process's
 * own contexts are unchanged. Called rarely (once per idle period), never on a request's path.
 *
 * What the collections free goes back to malloc, which keeps it resident; trimFreedHeap() hands
 * it to the OS (malloc-trim.ts). Only the HTTP thread calls it, once the whole process is quiet,
 * because a trim holds each arena's lock in turn (up to ~50 ms after a 10M fill) and any thread's
 * malloc may wait for it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mallocTrim } from './malloc-trim.js';

let gc: (() => void) | undefined;

/** This thread's idle collections and trims so far (module state is per thread): what each made a request wait. */
export const collections = { count: 0, seconds: 0, maxSeconds: 0, lastAtMs: 0, trims: 0, trimMaxSeconds: 0, lastTrimAtMs: 0 };

export function collectGarbage(): void {
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  const t0 = performance.now();
  gc();
  const s = (performance.now() - t0) / 1000;
  collections.count++;
  collections.seconds += s;
  if (s > collections.maxSeconds) collections.maxSeconds = s;
  collections.lastAtMs = Date.now();
}

export function trimFreedHeap(): void {
  const t0 = performance.now();
  mallocTrim();
  const s = (performance.now() - t0) / 1000;
  collections.trims++;
  if (s > collections.trimMaxSeconds) collections.trimMaxSeconds = s;
  collections.lastTrimAtMs = Date.now();
}
