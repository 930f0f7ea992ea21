/**
 * The client's copy of the cluster's partition map (GET /v1/cluster), for sending each user's calls
 * straight to the instance that owns the user's partition instead of through the configured URL
 * (which would forward them: one more hop, and a load on that instance).
 *
 * - Loaded from the configured URL at first use; calls made meanwhile wait for it (the load has its
 *   own deadline), so that the first calls are routed like the rest.
 * - Reloaded every refreshMs in the background, and soon after a call learnt that the map is stale
 *   (an answer saying the partition moved, or no connection to its owner); retries of a call wait
 *   for such a reload, so that they go where the new map says.
 * - A server that answers `{cluster: null}`, or predates the route (404), is a single instance:
 *   the map is never asked for again and every call goes to the configured URL, as without routing.
 * - A failed or malformed load keeps the map there was (none at first: the configured URL).
 */
import { mismatch, CLUSTER_STATE_SHAPE } from './shapes.js';
import { partitionOfId } from './partition.js';
import type { ClusterMember, ClusterState, PartitionOwner } from './types.js';

export interface ClusterRoutingOptions {
  /** the map is reloaded this often (default 5000 ms; at least 100) */
  refreshMs?: number;
}

/** What a load of the map got back. */
export interface MapAnswer {
  status: number;
  body: unknown;
}

/** A map as the client uses it: validated, with the members by id. */
interface PartitionMap {
  partitions: number;
  owners: PartitionOwner[];
  members: Map<string, ClusterMember>;
}

/**
 * Reloads asked for by calls are at least this far apart: while a partition has no owner (its owner
 * died and the lease has not run out yet) every call of it answers PARTITION_UNAVAILABLE, and a busy
 * client must not turn each of them into a load of the map.
 */
const MIN_RELOAD_GAP_MS = 200;

export class ClusterRouter {
  private map: PartitionMap | null = null;
  /** 'idle': not loaded yet; 'cluster': routing by the map; 'single': not a cluster, never asked again */
  private state: 'idle' | 'cluster' | 'single' = 'idle';
  /** the first load was started (it may have failed: then the periodic reloads take over) */
  private begun = false;
  /** a load (or the wait before one) under way */
  private pending: Promise<void> | undefined;
  /** the load under way is the first one: every call waits for it */
  private first = false;
  /** the load under way was asked for by a call: retries wait for it */
  private blocking = false;
  /** a call asked for a reload while one was under way: its answer may predate what the call saw */
  private again = false;
  private lastStart = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly ctrl = new AbortController();
  /** owner URLs that could not be connected to, until when they are passed over */
  private readonly down = new Map<string, number>();

  /** reloads are at least this far apart (MIN_RELOAD_GAP_MS, or refreshMs if that is shorter) */
  private readonly gapMs: number;

  constructor(
    private readonly load: (signal: AbortSignal) => Promise<MapAnswer>,
    private readonly refreshMs: number,
    /** deadline of one load */
    private readonly loadTimeoutMs: number,
  ) {
    this.gapMs = Math.min(MIN_RELOAD_GAP_MS, refreshMs);
  }

  /** The base URL of the owner of the user's partition, or null: the configured URL. */
  ownerOf(userId: string): string | null {
    const map = this.map;
    if (map === null) return null;
    const o = map.owners[partitionOfId(userId, map.partitions)];
    if (o.url === null || o.owner === null) return null;
    // A member the map itself says is gone cannot answer; the configured instance forwards or refuses.
    if (map.members.get(o.owner)?.alive === false) return null;
    const until = this.down.get(o.url);
    if (until !== undefined) {
      if (Date.now() < until) return null;
      this.down.delete(o.url);
    }
    return o.url;
  }

  /**
   * What a call about to be sent must wait for first, if anything: the first load (for every call)
   * or a reload a failed call asked for (for retries only, so that other calls are not held up).
   */
  waitFor(retry: boolean): Promise<void> | undefined {
    if (!this.begun && !this.closed) {
      // First use: load the map now rather than at construction, so that a client made and never
      // used (or used only for health checks) sends nothing.
      this.begun = true;
      this.start(0, true);
    }
    if (this.pending !== undefined && (this.first || (retry && this.blocking))) return this.pending;
    return undefined;
  }

  /** An answer said the map is stale (the partition moved or has no owner): reload soon. */
  stale(): void {
    if (this.closed || this.state === 'single') return;
    this.blocking = true;
    if (this.pending !== undefined) {
      this.again = true;
      return;
    }
    this.start(Math.max(0, this.lastStart + this.gapMs - Date.now()), false);
  }

  /** No connection to this owner: pass it over (the configured URL instead) until refreshMs from now, and reload. */
  unreachable(url: string): void {
    this.down.set(url, Date.now() + this.refreshMs);
    this.stale();
  }

  /** Stops reloading; a load under way is abandoned. Resolves once nothing is under way. */
  close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.ctrl.abort();
    return this.pending ?? Promise.resolve();
  }

  private start(delayMs: number, first: boolean): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.first = first;
    this.pending = (async () => {
      if (delayMs > 0) await this.sleep(delayMs);
      do {
        this.again = false;
        const gap = this.lastStart + this.gapMs - Date.now();
        if (gap > 0 && !first) await this.sleep(gap);
        if (this.closed) return;
        this.lastStart = Date.now();
        await this.loadOnce();
        first = false;
        this.first = false;
      } while (this.again && !this.closed && this.state !== 'single');
    })()
      // Calls wait on this promise: it must never reject (loadOnce catches what the load throws).
      .catch(() => undefined)
      .finally(() => {
      this.pending = undefined;
      this.first = false;
      this.blocking = false;
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.closed || this.state === 'single') return;
    this.timer = setTimeout(() => this.start(0, false), this.refreshMs);
    // Routing is a convenience: it must not keep a program alive that is done with the client.
    this.timer.unref();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.ctrl.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.ctrl.signal.addEventListener('abort', done, { once: true });
    });
  }

  private async loadOnce(): Promise<void> {
    // A controller per load rather than AbortSignal.any over the long-lived close signal, which
    // keeps every signal derived from it on some Node 20 releases.
    const ctrl = new AbortController();
    const abort = (): void => ctrl.abort();
    const timer = setTimeout(abort, this.loadTimeoutMs);
    this.ctrl.signal.addEventListener('abort', abort, { once: true });
    let res: MapAnswer;
    try {
      res = await this.load(ctrl.signal);
    } catch {
      return; // no answer: keep what there is, try again at the next refresh
    } finally {
      clearTimeout(timer);
      this.ctrl.signal.removeEventListener('abort', abort);
    }
    if (this.closed) return;
    if (res.status === 404) {
      // A server from before cluster mode: it has no map to give, and is not a cluster.
      this.becomeSingle();
      return;
    }
    if (res.status !== 200) return;
    const map = parseMap(res.body);
    if (map === 'single') this.becomeSingle();
    else if (map !== null) {
      this.map = map;
      this.state = 'cluster';
    }
  }

  private becomeSingle(): void {
    this.state = 'single';
    this.map = null;
    this.down.clear();
  }
}

/** A /v1/cluster body as a map; 'single' for `{cluster: null}`; null when it is not one the client can route by. */
function parseMap(body: unknown): PartitionMap | 'single' | null {
  if (mismatch(body, CLUSTER_STATE_SHAPE) !== null) return null;
  const b = body as ClusterState;
  if (b.cluster === null) return 'single';
  const { partitions, owners, members } = b;
  if (partitions === undefined || owners === undefined || members === undefined) return null;
  if (partitions < 1 || owners.length !== partitions) return null;
  for (const o of owners) if (o.url !== null && !usableUrl(o.url)) return null;
  return { partitions, owners, members: new Map(members.map((m) => [m.instance_id, m])) };
}

function usableUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}
