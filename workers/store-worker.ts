/**
 * Store worker (the flusher/loader thread): owns the store and the write-behind in front of it
 * (store-host.ts), and runs all of the store's I/O, so neither the HTTP thread nor a shard worker
 * ever blocks on it. better-sqlite3 is synchronous by design and must not run on the HTTP thread;
 * the Cassandra driver's request encoding and result decoding are CPU work better kept off it as
 * well. Shards talk to the host over their own MessagePorts; the main thread's calls (attach a
 * shard, drain, the journal barrier, figures, and direct store calls for journal replay) are
 * piscina tasks.
 */
import type { MessagePort } from 'node:worker_threads';
import { move, workerData } from 'piscina';
import { loadEach } from './store/load-many.js';
import type { CassandraConfig, StoreKind } from './store/store-config.js';
import type { ReadStateStore } from './store/store.js';
import { TelemetryRecorder, type ThreadTelemetry } from './thread-telemetry.js';
import { Fence, type FenceBuffers } from './cluster-fence.js';
import { collectGarbage } from './collect-garbage.js';
import { S_COLLECTIONS } from './store-status.js';
import { StoreHost, type StoreHostOptions, type StoreStateEvent } from './store-host.js';

export interface StoreWorkerData {
  kind: StoreKind;
  dataDir: string;
  cassandra: CassandraConfig;
  /** cluster mode: writes are fenced by the leases (cluster-fence.ts) */
  fence?: FenceBuffers;
  /** the host's status words (store-status.ts) */
  status: SharedArrayBuffer;
  shards: number;
  writeBehind: StoreHostOptions;
}

export type StoreTask =
  | { op: 'open' }
  | { op: 'load'; lo: number; hi: number }
  | { op: 'loadMany'; users: Uint32Array }
  | { op: 'apply'; records: Uint32Array; count: number }
  | { op: 'attach'; shard: number; port: MessagePort }
  | { op: 'events'; port: MessagePort }
  | { op: 'gate'; shard: number; on: boolean }
  | { op: 'submit'; records: Uint32Array }
  | { op: 'drain'; seqs: number[]; timeoutMs: number }
  | { op: 'startBarrier'; seqs: number[] }
  | { op: 'barrierPassed' }
  | { op: 'stats' }
  | { op: 'telemetry'; resetDelay: boolean }
  | { op: 'close' };

const data = workerData as StoreWorkerData;
/** how often the SQLite checkpointer thread copies the WAL into the database file */
const CHECKPOINT_INTERVAL_MS = 250;
const telemetry = new TelemetryRecorder('store');
/**
 * This thread's store, opened once per thread. The main thread asks for 'open' once, at start;
 * a thread piscina starts to replace one that died never gets that task, so every call opens the
 * store if it is not open yet. A failed open is forgotten, so the next call (a write-behind
 * retry, the next load) tries again.
 */
let store: Promise<ReadStateStore> | undefined;
let closed = false;

function opened(): Promise<ReadStateStore> {
  if (closed) return Promise.reject(new Error('the store is closed'));
  store ??= openStore().catch((err: unknown) => {
    store = undefined;
    throw err;
  });
  return store;
}

async function openStore(): Promise<ReadStateStore> {
  const s = await create();
  await s.open();
  return s;
}

/**
 * Writes wait their turn; loads do not. The main thread keeps several write batches in flight
 * (they arrive here together), and SQLite runs each to completion on this thread: a load that
 * arrived behind four 500-record transactions, each with its fsync, waited for all of them, and a
 * load is a client request parked on a miss, while a write parks nobody. So a write starts at
 * most one per event-loop turn (setImmediate), and the load messages that arrived meanwhile run
 * first, in the poll phase before it. An asynchronous store (Cassandra) still has all its writes
 * in flight at once: they are only started one turn apart.
 */
interface QueuedApply {
  records: Uint32Array;
  count: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}
const applies: QueuedApply[] = [];
let applyScheduled = false;
/** writes started and not yet settled (an asynchronous store's in flight) */
let applying = 0;

function applySettled(): void {
  applying--;
}

function startNextApply(): void {
  applyScheduled = false;
  const a = applies.shift()!;
  if (applies.length > 0) scheduleApply();
  applying++;
  opened()
    .then((s) => s.apply(a.records, a.count))
    .then(a.resolve, a.reject)
    .finally(applySettled);
}

/** Close only after every write that was handed to us has been tried. */
async function drainApplies(): Promise<void> {
  while (applies.length > 0 || applying > 0) await new Promise<void>((r) => setImmediate(r));
}

function scheduleApply(): void {
  if (applyScheduled) return;
  applyScheduled = true;
  setImmediate(startNextApply);
}

function queueApply(records: Uint32Array, count: number): Promise<null> {
  return new Promise<null>((resolve, reject) => {
    applies.push({ records, count, resolve: () => resolve(null), reject });
    scheduleApply();
  });
}

async function create(): Promise<ReadStateStore> {
  if (data.kind === 'memory') {
    const { MemoryStore } = await import('./store/memory-store.js');
    return new MemoryStore();
  }
  if (data.kind === 'sqlite') {
    const { SqliteStore } = await import('./store/sqlite-store.js');
    // loads run on this thread: WAL checkpoints go to a thread of their own (see sqlite-checkpointer.ts)
    return new SqliteStore({ dataDir: data.dataDir, checkpointer: { intervalMs: CHECKPOINT_INTERVAL_MS } });
  }
  const { CassandraStore } = await import('./store/cassandra-store.js');
  const c = data.cassandra;
  return new CassandraStore({
    contactPoints: c.contactPoints,
    port: c.port,
    localDataCenter: c.localDataCenter,
    keyspace: c.keyspace,
    replicationFactor: c.replicationFactor,
    consistency: c.consistency,
    fence: data.fence === undefined ? undefined : new Fence(data.fence),
  });
}

/** The store as the write-behind uses it: writes take their turn (queueApply), loads do not. */
const turned: ReadStateStore = {
  name: data.kind,
  open: async () => {
    await opened();
  },
  load: async (lo, hi) => (await opened()).load(lo, hi),
  apply: async (records, count) => {
    await queueApply(records, count);
  },
  close: async () => {},
};
// The store thread is where a fill's write-back leaves its garbage: collect it once idle, and say
// so to the main thread, which gives the freed memory back once the whole process is quiet.
const statusWords = new Int32Array(data.status);
const host = new StoreHost(turned, data.status, data.shards, {
  ...data.writeBehind,
  onIdle: () => {
    collectGarbage();
    Atomics.add(statusWords, S_COLLECTIONS, 1);
  },
});
let events: MessagePort | null = null;
host.onStateChange = (e: StoreStateEvent) => events?.postMessage(e);

/** Answers a task: a Uint32Array (loads, moved where large), figures, a boolean, or null. */
export default async function run(task: StoreTask): Promise<unknown> {
  switch (task.op) {
    case 'telemetry':
      return telemetry.read(task.resetDelay);
    case 'open':
      await opened();
      return null;
    case 'load':
      return (await opened()).load(task.lo, task.hi);
    case 'loadMany':
      // Transferred, not copied: the answer for a thousand users is ~100 kB.
      return move(await loadEach(await opened(), task.users));
    case 'apply':
      return queueApply(task.records, task.count);
    case 'attach':
      host.attach(task.shard, task.port);
      return null;
    case 'events':
      events = task.port;
      events.unref();
      return null;
    case 'gate':
      host.gate(task.shard, task.on);
      return null;
    case 'submit':
      host.submit(task.records);
      return null;
    case 'drain':
      return host.drain(task.seqs, task.timeoutMs);
    case 'startBarrier':
      await host.startBarrier(task.seqs);
      return null;
    case 'barrierPassed':
      return host.barrierPassed;
    case 'stats':
      return host.stats();
    case 'close': {
      host.close();
      await drainApplies();
      closed = true;
      const s = await store?.catch(() => undefined);
      store = undefined;
      await s?.close();
      return null;
    }
  }
}

// A replacement thread serves again as soon as it can, not only once the next call comes.
opened().catch(() => {});
