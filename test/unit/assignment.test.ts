import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { desiredOwners } from '../../src/cluster/assignment.js';

const ids = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 8 });

describe('rendezvous assignment', () => {
  it('gives every partition to one of the members, the same whatever their order', () => {
    fc.assert(
      fc.property(ids, fc.integer({ min: 1, max: 2048 }), (members, partitions) => {
        const d = desiredOwners(members, partitions);
        const reversed = [...members].reverse();
        const r = desiredOwners(reversed, partitions);
        for (let p = 0; p < partitions; p++) {
          expect(d[p]).toBeGreaterThanOrEqual(0);
          expect(members[d[p]]).toBe(reversed[r[p]]);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('a member joining takes partitions only for itself, and about its share', () => {
    fc.assert(
      fc.property(ids, fc.string({ minLength: 1, maxLength: 24 }), (members, joiner) => {
        fc.pre(!members.includes(joiner));
        const partitions = 1024;
        const before = desiredOwners(members, partitions);
        const after = desiredOwners([...members, joiner], partitions);
        let moved = 0;
        for (let p = 0; p < partitions; p++) {
          if (members[before[p]] === [...members, joiner][after[p]]) continue;
          expect(after[p]).toBe(members.length);
          moved++;
        }
        const share = partitions / (members.length + 1);
        expect(moved).toBeGreaterThan(share * 0.6);
        expect(moved).toBeLessThan(share * 1.4);
      }),
      { numRuns: 200 },
    );
  });
});
