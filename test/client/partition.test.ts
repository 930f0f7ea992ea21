/**
 * The client's copy of the partition function gives the server's answer for every id: random ids
 * over the whole u64 range, sequential snowflakes, and the edges (0, 2^32 +- 1, 2^53 +- 1, 2^64 - 1),
 * for several partition counts. A client that disagreed would send users to the wrong instance.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { partitionOfId, PARTITION_SEED as CLIENT_SEED } from '../../client/partition.js';
import { PARTITION_SEED, partitionOf } from '../../workers/hash.js';

const MASK32 = 0xffffffffn;

/** The server's answer, from the id's halves computed with BigInt (independently of either parser). */
function serverPartition(id: bigint, partitions: number): number {
  return partitionOf(Number(id & MASK32), Number(id >> 32n), partitions);
}

function randomU64(): bigint {
  return randomBytes(8).readBigUInt64BE();
}

const EDGES: bigint[] = [
  0n,
  1n,
  9n,
  10n,
  0xffffffffn,
  0x100000000n,
  0x100000001n,
  2n ** 36n - 1n,
  2n ** 36n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  10n ** 19n - 1n,
  10n ** 19n,
  2n ** 64n - 2n,
  2n ** 64n - 1n,
];

const COUNTS = [1, 2, 3, 7, 64, 1000, 1024, 4096, 65_536];

describe('partitionOfId (client) and partitionOf (server)', () => {
  it('use the same seed', () => {
    expect(CLIENT_SEED).toBe(PARTITION_SEED);
  });

  it('agree on the edges of the u64 range, every partition count', () => {
    for (const id of EDGES) {
      for (const n of COUNTS) expect(partitionOfId(id.toString(), n), `${id} mod ${n}`).toBe(serverPartition(id, n));
    }
  });

  it('agree on 20000 random ids over the whole range and on short ones', () => {
    for (let i = 0; i < 20_000; i++) {
      // every length of decimal: a random u64 shifted right by a random amount
      const id = randomU64() >> BigInt(i % 64);
      const n = COUNTS[i % COUNTS.length];
      expect(partitionOfId(id.toString(), n), `${id} mod ${n}`).toBe(serverPartition(id, n));
    }
  });

  it('agree on sequential snowflakes (only the low bits change)', () => {
    const base = 1_101_010_101_010_101_010n;
    for (let i = 0n; i < 5000n; i++) expect(partitionOfId((base + i).toString(), 1024)).toBe(serverPartition(base + i, 1024));
  });

  it('spread sequential snowflakes over the partitions', () => {
    const seen = new Set<number>();
    const base = 80_351_110_224_678_912n;
    for (let i = 0n; i < 4096n; i++) seen.add(partitionOfId((base + (i << 22n)).toString(), 64));
    expect(seen.size).toBe(64);
  });
});
