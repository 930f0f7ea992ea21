/**
 * The naive cache: lru-cache v11 of users (key: user id string, value: Map of the user's read
 * states). `max` bounds the users and `maxSize` the read states (sizeCalculation = the user's
 * channel count), evicting least recently used users; an evicted user's changes go to the store.
 * A miss loads the user through the write-behind (which overlays changes the store has not
 * confirmed); ops of a user being loaded wait for that one load, in arrival order.
 */
import { LRUCache } from 'lru-cache';
import type { WriteBehind } from '../../workers/write-behind.js';
import { ResultStatus } from '../../workers/protocol.js';
import type { DirtyTracker } from './dirty.js';
import { hi32, lo32 } from './ids.js';
import type { UserStates } from './read-state.js';
import { userFromWords } from './records.js';

/** Runs with the user's read states, or with undefined and the status that answers the op. */
export type UserTask = (user: UserStates | undefined, failure: number) => void;

export interface CacheOptions {
  /** read states cached */
  capacity: number;
  /** users cached */
  maxUsers: number;
  /** ops waiting for user loads beyond which requests are refused */
  maxQueue: number;
}

interface Load {
  tasks: UserTask[];
}

export class UserCache {
  readonly capacity: number;
  private readonly maxQueue: number;
  private readonly lru: LRUCache<string, UserStates>;
  private readonly loading = new Map<string, Load>();
  /** ops parked behind a load */
  private waiting = 0;
  /** read states cached (lru's calculatedSize counts an empty user as 1) */
  readStates = 0;
  readonly counters = { hits: 0, misses: 0, loadFailures: 0, evictions: 0, rejectedFull: 0 };

  constructor(
    o: CacheOptions,
    private readonly writeBehind: WriteBehind,
    private readonly dirty: DirtyTracker,
  ) {
    this.capacity = o.capacity;
    this.maxQueue = o.maxQueue;
    this.lru = new LRUCache<string, UserStates>({
      max: o.maxUsers,
      maxSize: o.capacity,
      // lru-cache needs a positive size: an empty user counts as one.
      sizeCalculation: (user) => Math.max(1, user.size),
      dispose: (user, _key, reason) => {
        // 'delete' is our own re-sizing (resized); only evictions drop a user.
        if (reason !== 'evict') return;
        this.counters.evictions++;
        this.readStates -= user.size;
        this.dirty.evicted(user.values());
      },
    });
  }

  get users(): number {
    return this.lru.size;
  }

  get loadingUsers(): number {
    return this.loading.size;
  }

  get queued(): number {
    return this.waiting;
  }

  /** Whether a request of `ops` operations may start: they could all have to wait for loads. */
  hasRoom(ops: number): boolean {
    return this.waiting + ops <= this.maxQueue;
  }

  /** Runs `task` with the user's read states: now if cached, else once the user is loaded. */
  withUser(key: string, userId: bigint, task: UserTask): void {
    const user = this.lru.get(key);
    if (user !== undefined) {
      this.counters.hits++;
      task(user, 0);
      return;
    }
    let load = this.loading.get(key);
    if (load === undefined) {
      this.counters.misses++;
      const l: Load = { tasks: [] };
      this.loading.set(key, l);
      this.writeBehind.load(lo32(userId), hi32(userId)).then(
        (words) => this.loaded(key, l, userFromWords(userId, words)),
        () => this.failed(key, l),
      );
      load = l;
    }
    this.waiting++;
    load.tasks.push(task);
  }

  /** The user's channel count changed: lru-cache sizes an entry only when it is set, so set it again. */
  resized(key: string, user: UserStates): void {
    this.lru.delete(key);
    this.lru.set(key, user);
  }

  private loaded(key: string, load: Load, user: UserStates): void {
    this.loading.delete(key);
    this.waiting -= load.tasks.length;
    if (user.size > this.capacity) {
      for (const task of load.tasks) task(undefined, ResultStatus.InsufficientStorage);
      return;
    }
    this.lru.set(key, user);
    this.readStates += user.size;
    // Synchronously, in arrival order: nothing else runs between the insert and these ops.
    for (const task of load.tasks) task(user, 0);
  }

  private failed(key: string, load: Load): void {
    this.loading.delete(key);
    this.waiting -= load.tasks.length;
    this.counters.loadFailures++;
    for (const task of load.tasks) task(undefined, ResultStatus.Unavailable);
  }
}
