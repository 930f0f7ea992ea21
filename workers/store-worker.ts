/**
 * Store worker (the flusher/loader thread): owns the durable store's connection and runs all of
 * its I/O, so neither the HTTP thread nor a shard worker ever blocks on it. better-sqlite3 is
 * synchronous by design and must not run on the HTTP thread; the Cassandra driver's request
 * encoding and result decoding are CPU work better kept off the HTTP thread as well (the main
 * thread only forwards flat buffers). One task per store call; records travel as transferred
 * Uint32Arrays in the shard wire format.
 */
import { workerData } from 'piscina';
import type { CassandraConfig, StoreKind } from '../src/config.js';
import type { ReadStateStore } from '../src/store/store.js';
import { TelemetryRecorder, type ThreadTelemetry } from './thread-telemetry.js';

export interface StoreWorkerData {
  kind: Exclude<StoreKind, 'memory'>;
  dataDir: string;
  cassandra: CassandraConfig;
}

export type StoreTask =
  | { op: 'open' }
  | { op: 'load'; lo: number; hi: number }
  | { op: 'apply'; records: Uint32Array; count: number }
  | { op: 'telemetry'; resetDelay: boolean }
  | { op: 'close' };

const data = workerData as StoreWorkerData;
const telemetry = new TelemetryRecorder('store');
let store: ReadStateStore | undefined;

async function create(): Promise<ReadStateStore> {
  if (data.kind === 'sqlite') {
    const { SqliteStore } = await import('../src/store/sqlite-store.js');
    return new SqliteStore({ dataDir: data.dataDir });
  }
  const { CassandraStore } = await import('../src/store/cassandra-store.js');
  const c = data.cassandra;
  return new CassandraStore({
    contactPoints: c.contactPoints,
    port: c.port,
    localDataCenter: c.localDataCenter,
    keyspace: c.keyspace,
    replicationFactor: c.replicationFactor,
    consistency: c.consistency,
  });
}

export default async function run(task: StoreTask): Promise<Uint32Array | ThreadTelemetry | null> {
  switch (task.op) {
    case 'telemetry':
      return telemetry.read(task.resetDelay);
    case 'open':
      store ??= await create();
      await store.open();
      return null;
    case 'load':
      return store!.load(task.lo, task.hi);
    case 'apply':
      await store!.apply(task.records, task.count);
      return null;
    case 'close':
      await store?.close();
      store = undefined;
      return null;
  }
}
