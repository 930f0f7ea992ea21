/**
 * glibc's malloc_trim(0) through the addon in workers/native (built by `npm install`'s install
 * script). Threads free a burst's small buffers back to malloc, but glibc returns pages to the OS
 * only from the top of an arena, so what a fill left between live chunks stays resident; this
 * hands it back for every thread's arena at once. Called only through trimFreedHeap
 * (collect-garbage.ts), a step of the HTTP thread's own that waits until the whole process is
 * quiet: it walks every arena under its lock, milliseconds that other threads' allocations would
 * wait for. Without the addon (no compiler at install, another C library) it is a no-op and
 * start-up logs so.
 */
import { createRequire } from 'node:module';

interface Addon {
  trim(): boolean;
}

// dist/workers/*.js and the sources under test sit at different depths from the build output.
const CANDIDATES = ['../../workers/native/build/Release/malloc_trim.node', './native/build/Release/malloc_trim.node'];

let addon: Addon | null | undefined;

function load(): Addon | null {
  const require = createRequire(import.meta.url);
  for (const path of CANDIDATES) {
    try {
      return require(path) as Addon;
    } catch {
      // try the next layout
    }
  }
  return null;
}

export function mallocTrimAvailable(): boolean {
  if (addon === undefined) addon = load();
  return addon !== null;
}

/** Gives free heap pages back to the OS; true if any were. */
export function mallocTrim(): boolean {
  if (addon === undefined) addon = load();
  return addon !== null && addon.trim();
}
