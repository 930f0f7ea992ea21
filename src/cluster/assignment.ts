/**
 * Which member should own each partition: rendezvous (highest random weight) hashing over the live
 * members that are not leaving. Every instance computes the same answer from the same member list,
 * and a member joining or leaving moves only the partitions it wins or held (about 1/n of them).
 */
import { fmix32 } from '../../workers/hash.js';

/** A 32-bit hash of a member id (FNV-1a, then fmix32). */
export function memberHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

/** desired[p] = index into `members` of partition p's desired owner (-1 when there is no member). */
export function desiredOwners(members: readonly string[], partitions: number): Int32Array {
  const desired = new Int32Array(partitions).fill(-1);
  const hashes = members.map(memberHash);
  for (let p = 0; p < partitions; p++) {
    let best = -1;
    let bestWeight = -1;
    for (let m = 0; m < hashes.length; m++) {
      const w = fmix32((hashes[m] ^ Math.imul(p + 1, 0x9e3779b1)) >>> 0);
      // ties (vanishingly rare) go to the smaller id, so every instance picks the same one
      if (w > bestWeight || (w === bestWeight && best >= 0 && members[m] < members[best])) {
        best = m;
        bestWeight = w;
      }
    }
    desired[p] = best;
  }
  return desired;
}
