/**
 * The scratch buffers of both threads (workers/grow-buffer.ts) against a plain array: pushes and
 * reserves keep every word whatever the buffer grows to, and trim() gives the room back only
 * when the buffer is empty.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GrowBuffer } from '../../workers/grow-buffer.js';

describe('grow buffer', () => {
  it('keeps its words through growth and trims, and shrinks back only when empty', () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), n: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ kind: fc.constant('reserve' as const), n: fc.integer({ min: 0, max: 5_000 }) }),
      fc.record({ kind: fc.constant('clear' as const), n: fc.constant(0) }),
      fc.record({ kind: fc.constant('trim' as const), n: fc.constant(0) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.array(step, { maxLength: 40 }), (initial, steps) => {
        const g = new GrowBuffer(initial);
        const model: number[] = [];
        let next = 1;
        for (const s of steps) {
          if (s.kind === 'push') {
            for (let i = 0; i < s.n; i++) {
              g.push(next);
              model.push(next++);
            }
          } else if (s.kind === 'reserve') {
            const at = g.reserve(s.n);
            expect(at).toBe(model.length);
            for (let i = 0; i < s.n; i++) {
              g.buf[at + i] = next;
              model.push(next++);
            }
          } else if (s.kind === 'clear') {
            g.len = 0;
            model.length = 0;
          } else {
            const size = g.buf.length;
            g.trim();
            expect(g.buf.length).toBe(model.length === 0 ? initial : size);
          }
          expect(g.len).toBe(model.length);
          expect(g.buf.length).toBeGreaterThanOrEqual(Math.max(initial, model.length));
          expect([...g.buf.subarray(0, g.len)]).toEqual(model);
        }
      }),
      { seed: 0x5eed, numRuns: 300 },
    );
  });
});
