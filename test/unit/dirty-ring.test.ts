/**
 * The write-behind FIFO (workers/dirty-ring.ts) against a plain array: random pushes, pops and
 * trims keep the order and the absolute positions; it grows up to its maximum, refuses beyond it,
 * and gives its room back once drained.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DirtyRing } from '../../workers/dirty-ring.js';

describe('dirty ring', () => {
  it('is a FIFO with absolute positions whatever it grows or shrinks to', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), n: fc.integer({ min: 1, max: 20_000 }) }),
      fc.record({ kind: fc.constant('pop' as const), n: fc.integer({ min: 1, max: 20_000 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50_000 }), fc.array(step, { maxLength: 12 }), (max, steps) => {
        const ring = new DirtyRing(max);
        // the model: entries pushed (values are their push number), the oldest at `popped`
        let popped = 0;
        let next = 0;
        let wrong = 0;
        for (const { kind, n } of steps) {
          for (let k = 0; k < n; k++) {
            if (kind === 'push') {
              if (!ring.room()) {
                // full only at its maximum: the engine pops the oldest (a stale entry) first
                if (next - popped !== max) wrong++;
                if (ring.shift() !== popped++) wrong++;
                if (!ring.room()) wrong++;
              }
              ring.push(next++);
            } else if (next > popped) {
              if (ring.shift() !== popped++) wrong++;
            }
          }
          if (kind === 'pop') ring.trim();
          expect(wrong).toBe(0);
          expect(ring.head).toBe(popped);
          expect(ring.tail).toBe(next);
          expect(ring.length).toBeLessThanOrEqual(Math.max(max, 4096));
          expect(ring.length).toBeGreaterThanOrEqual(Math.min(next - popped, max));
        }
        while (next > popped) if (ring.shift() !== popped++) wrong++;
        expect(wrong).toBe(0);
      }),
      { seed: 31, numRuns: 300 },
    );
  });

  it('gives back what a drained wave used', () => {
    const ring = new DirtyRing(1_000_000);
    let refused = 0;
    for (let s = 0; s < 1_000_000; s++) {
      if (!ring.room()) refused++;
      ring.push(s);
    }
    expect(refused).toBe(0);
    expect(ring.length).toBe(1_000_000);
    expect(ring.room()).toBe(false);
    for (let s = 0; s < 999_000; s++) ring.shift();
    ring.trim();
    expect(ring.length).toBeLessThanOrEqual(4096);
    let wrong = 0;
    for (let s = 999_000; s < 1_000_000; s++) if (ring.shift() !== s) wrong++;
    expect(wrong).toBe(0);
  });
});
