/**
 * Deletes redo-journal segments whose changes the store holds (the shards write them:
 * workers/journal.ts), as Cassandra recycles commit-log segments once their memtables are flushed.
 *
 * A segment of shard k may go when it is below the floor shard k reported AND every record the
 * shards had handed to the write-behind by then has been confirmed by the store (or replaced by a
 * newer pending record, whose own changes are above the floor). The second half is a barrier on
 * the write-behind's pending pool: two generations, flipped here once the previous one is empty.
 * So one pass per interval: take the floors, flip; when the old generation has drained, delete.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSegmentFileName, shardDirName } from '../workers/journal-format.js';
import type { ShardLane } from './shard-lane.js';
import type { WriteBehind } from './write-behind.js';

export interface RetirerOptions {
  journalDir: string;
  lanes: readonly ShardLane[];
  writeBehind: WriteBehind;
  intervalMs?: number;
  onError: (err: unknown) => void;
}

export class JournalRetirer {
  private readonly o: RetirerOptions;
  private readonly timer: NodeJS.Timeout;
  private floors: number[] | null = null;
  private deleting = false;
  /** segments deleted since start */
  retired = 0;

  constructor(o: RetirerOptions) {
    this.o = o;
    this.timer = setInterval(() => this.tick(), o.intervalMs ?? 1000);
    this.timer.unref();
  }

  private tick(): void {
    if (this.deleting) return;
    const wb = this.o.writeBehind;
    if (this.floors !== null) {
      if (!wb.barrierPassed) return;
      const floors = this.floors;
      this.floors = null;
      this.deleting = true;
      this.deleteBelow(floors).then(
        () => (this.deleting = false),
        (err: unknown) => {
          this.deleting = false;
          this.o.onError(err);
        },
      );
      return;
    }
    // Floors first, then the barrier: records handed over with those replies are in the old generation.
    this.floors = this.o.lanes.map((l) => (l.reapplying === null ? l.journalFloor : 0));
    wb.startBarrier();
  }

  private async deleteBelow(floors: number[]): Promise<void> {
    for (let shard = 0; shard < floors.length; shard++) {
      const dir = join(this.o.journalDir, shardDirName(shard));
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const seg = parseSegmentFileName(name);
        if (seg < 0 || seg >= floors[shard]) continue;
        try {
          await unlink(join(dir, name));
          this.retired++;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    }
  }

  /** After a clean stop (every change confirmed by the store, shards stopped): nothing to replay. */
  async retireAll(): Promise<void> {
    clearInterval(this.timer);
    const everything = this.o.lanes.map(() => Number.MAX_SAFE_INTEGER);
    await this.deleteBelow(everything);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
