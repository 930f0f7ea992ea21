/**
 * Deletes redo-journal segments whose changes the store holds (the shards write them:
 * workers/journal.ts), as Cassandra recycles commit-log segments once their memtables are flushed.
 *
 * A segment of shard k may go when it is below the floor shard k reported AND every record the
 * shards had posted to the store host by then has been confirmed by the store (or replaced by a
 * newer pending record, whose own changes are above the floor). The second half is a barrier on
 * the write-behind's pending pool: two generations, flipped (once the host has taken every shard
 * message posted before the floors were read) when the previous one is empty. So one pass per
 * interval: take the floors, flip; when the old generation has drained, delete.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSegmentFileName, shardDirName } from '../workers/journal-format.js';
import type { ShardLane } from './shard-lane.js';
import type { StoreLink } from './store/store-link.js';

export interface RetirerOptions {
  journalDir: string;
  lanes: readonly ShardLane[];
  store: StoreLink;
  intervalMs?: number;
  onError: (err: unknown) => void;
}

export class JournalRetirer {
  private readonly o: RetirerOptions;
  private readonly timer: NodeJS.Timeout;
  private floors: number[] | null = null;
  private busy = false;
  /** segments deleted since start */
  retired = 0;

  constructor(o: RetirerOptions) {
    this.o = o;
    this.timer = setInterval(() => this.tick(), o.intervalMs ?? 1000);
    this.timer.unref();
  }

  private tick(): void {
    if (this.busy) return;
    this.busy = true;
    this.pass().then(
      () => (this.busy = false),
      (err: unknown) => {
        this.busy = false;
        this.o.onError(err);
      },
    );
  }

  private async pass(): Promise<void> {
    const store = this.o.store;
    if (this.floors !== null) {
      if (!(await store.barrierPassed())) return;
      const floors = this.floors;
      this.floors = null;
      // A journal applied again meanwhile (a store thread replaced) is still needed whole.
      if (this.o.lanes.some((l) => l.reapplying !== null)) return;
      await this.deleteBelow(floors);
      return;
    }
    // Floors first, then the barrier: records posted before those replies are in the old generation.
    const floors = this.o.lanes.map((l) => (l.reapplying === null ? l.journalFloor : 0));
    await store.startBarrier();
    this.floors = floors;
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
