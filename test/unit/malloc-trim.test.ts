/**
 * The idle collections' malloc_trim (workers/malloc-trim.ts): `npm install` builds the addon, so
 * on this glibc machine it must load; a checkout where the install script stopped building it
 * would keep a fill's freed heap resident (PERFORMANCE.md, memory) and fails here instead. What
 * the trim gives back is measured by bench/memory-in-use.ts, not here.
 */
import { describe, expect, it } from 'vitest';
import { collectGarbage, collections, trimFreedHeap } from '../../workers/collect-garbage.js';
import { mallocTrim, mallocTrimAvailable } from '../../workers/malloc-trim.js';

describe('malloc trim', () => {
  it('is built by the install, and a collection with it leaves live buffers intact', () => {
    expect(mallocTrimAvailable()).toBe(true);
    const kept: Buffer[] = [];
    for (let i = 0; i < 4000; i++) {
      const b = Buffer.alloc(16 * 1024, i & 0xff);
      if (i % 2 === 0) kept.push(b);
    }
    collectGarbage();
    const trims = collections.trims;
    trimFreedHeap();
    expect(collections.trims).toBe(trims + 1);
    expect(typeof mallocTrim()).toBe('boolean');
    expect(kept.every((b, k) => b[0] === ((2 * k) & 0xff) && b[b.length - 1] === ((2 * k) & 0xff))).toBe(true);
  });
});
