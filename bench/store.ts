/**
 * Store benchmarks (issue: persistence): for the embedded SQLite store and for Cassandra,
 * 1. flush throughput: read states per second through what the service's store thread runs
 *    (the WriteBehind in front of the store, both in this process as they are in that thread;
 *    the shard's MessagePort hop is left out), from submit to confirmed;
 * 2. load-on-miss latency: one user (20 read states) loaded through the same WriteBehind;
 * 3. hot-path latency while a large flush runs vs with none: the real service as a child process,
 *    a fixed rate of single-op mentions on cached users, during a 200k-read-state flush and after.
 *
 *   npm run bench:store -- --store sqlite,cassandra --records 200000
 * Cassandra must answer on 127.0.0.1:9042 (npm run cassandra:start).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadConfig, type StoreKind } from '../src/config.js';
import { createStore } from '../src/store/open-store.js';
import { WriteBehind } from '../workers/write-behind.js';
import { RecordKind, RsWord, StoredWord, hi32, lo32 } from '../workers/protocol.js';
import { REPO_ROOT, describeMachine, fmt, intFlag, machine, parseFlags, strFlag, table, writeResults } from './common.js';
import { serviceEnv } from './service-env.js';

const CHANNELS = 20;

function records(users: number, base: number): Uint32Array {
  const out = new Uint32Array(users * CHANNELS * StoredWord.Size);
  const ts = Date.now() * 1000;
  let at = 0;
  for (let u = 0; u < users; u++) {
    for (let c = 1; c <= CHANNELS; c++) {
      out[at + StoredWord.Kind] = RecordKind.Write;
      out[at + StoredWord.UserLo] = base + u;
      out[at + StoredWord.Rs + RsWord.ChanLo] = c;
      out[at + StoredWord.Rs + RsWord.MsgLo] = 1000 + c;
      out[at + StoredWord.Rs + RsWord.Mention] = c % 3;
      out[at + StoredWord.Rs + RsWord.VerLo] = 1;
      const t = ts + at;
      out[at + StoredWord.TsLo] = lo32(t);
      out[at + StoredWord.TsHi] = hi32(t);
      at += StoredWord.Size;
    }
  }
  return out;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function storeFigures(kind: StoreKind, n: number, dataDir: string, keyspace: string) {
  const config = loadConfig(['--store', kind, '--data-dir', dataDir, '--cassandra-keyspace', keyspace], {});
  const store = createStore(config);
  await store.open();
  const wb = new WriteBehind(store);
  const users = Math.ceil(n / CHANNELS);
  const recs = records(users, 1_000_000);
  const started = performance.now();
  wb.submit(recs, users * CHANNELS);
  if (!(await wb.drain(600_000))) throw new Error('flush did not finish');
  const flushSeconds = (performance.now() - started) / 1000;
  const loads: number[] = [];
  for (let i = 0; i < 500; i++) {
    const t = performance.now();
    const got = await wb.load(1_000_000 + ((i * 7919) % users), 0);
    loads.push(performance.now() - t);
    if (got.length !== CHANNELS * RsWord.Size) throw new Error(`load returned ${got.length / RsWord.Size} read states`);
  }
  // 16 concurrent misses, as a burst of connects would cause
  const t16 = performance.now();
  await Promise.all(Array.from({ length: 16 }, async (_, k) => {
    for (let i = 0; i < 50; i++) await wb.load(1_000_000 + ((k * 50 + i) * 104729) % users, 0);
  }));
  const concurrentLoadsPerSecond = 800 / ((performance.now() - t16) / 1000);
  wb.close();
  await store.close();
  return {
    store: kind,
    records: users * CHANNELS,
    flushSeconds,
    flushPerSecond: (users * CHANNELS) / flushSeconds,
    loadMs: { p50: pct(loads, 50), p99: pct(loads, 99), max: Math.max(...loads) },
    concurrentLoadsPerSecond,
  };
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url + '/ready')).status === 200) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('service not ready');
}

async function hotPathDuringFlush(kind: StoreKind, n: number, dataDir: string, keyspace: string, rate: number) {
  const port = 3700 + Math.floor(Math.random() * 200);
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/main.js'), '--port', String(port), '--shards', '1', '--store', kind, '--data-dir', dataDir, '--cassandra-keyspace', keyspace, '--flush-delay', '4000', '--capacity', String(n * 2), '--log-level', 'warn'], { env: serviceEnv(), stdio: 'inherit' });
  try {
    await waitReady(url);
    // Hot users (cached, the ones the load touches) first, then the big dirty set to flush.
    const hot = Array.from({ length: 1000 }, (_, i) => String(10 + i));
    for (let b = 0; b < hot.length; b += 500) {
      const ops = hot.slice(b, b + 500).map((u) => ({ op: 'mention', user_id: u, channel_id: '1' }));
      await fetch(url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops }) });
    }
    await new Promise((r) => setTimeout(r, 6000)); // hot users flushed: the next window starts clean
    const measure = async (seconds: number) => {
      let i = 0;
      const result = await autocannon({
        url,
        // Few connections: autocannon's overallRate fires every connection's timer together, so
        // with many connections a fixed rate arrives in bursts (64 connections at 2,000 req/s gave
        // p99 ~100-200 ms even against a bare fastify route; 8 gave ~5-8 ms).
        connections: 8,
        duration: seconds,
        overallRate: rate,
        requests: [
          {
            method: 'POST',
            setupRequest: (req) => {
              i++;
              return { ...req, path: `/v1/users/${hot[i % hot.length]}/read-states/1/mentions`, headers: { 'content-type': 'application/json' }, body: '{}' };
            },
          },
        ],
      } as Parameters<typeof autocannon>[0]);
      return { p50: result.latency.p50, p99: result.latency.p99, p999: result.latency.p99_9, max: result.latency.max, rps: result.requests.average, non2xx: result.non2xx };
    };
    const quiet = await measure(10);
    // Dirty n read states; their flush starts flush-delay later and runs while we measure.
    const users = Math.ceil(n / CHANNELS);
    for (let b = 0; b < users; b += 500) {
      const ops = [];
      for (let u = b; u < Math.min(users, b + 500); u++) for (let c = 1; c <= CHANNELS; c++) ops.push({ op: 'mention', user_id: String(5_000_000 + u), channel_id: String(c) });
      await fetch(url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ops }) });
    }
    const before = (await (await fetch(url + '/v1/stats')).json()) as { store: { written: number } };
    const during = await measure(15);
    const after = (await (await fetch(url + '/v1/stats')).json()) as { store: { written: number; pending: number } };
    return { store: kind, dirtied: users * CHANNELS, writtenDuringWindow: after.store.written - before.store.written, rate, quiet, during };
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const stores = strFlag(flags, 'store', 'sqlite,cassandra').split(',') as StoreKind[];
  const n = intFlag(flags, 'records', 200_000);
  const rate = intFlag(flags, 'rate', 2000);
  const m = machine();
  console.log(describeMachine(m));
  const results = [];
  for (const kind of stores) {
    const dir = mkdtempSync(join(tmpdir(), 'rs-bench-'));
    const keyspace = `rs_bench_${Date.now().toString(36)}`;
    try {
      console.log(`[${kind}] flush throughput and load latency (${n} read states)...`);
      const figures = await storeFigures(kind, n, dir, keyspace);
      console.log(`[${kind}] hot path during a ${n}-read-state flush vs quiet (fixed ${rate} req/s)...`);
      const hot = await hotPathDuringFlush(kind, n, dir, keyspace + 'h', rate);
      results.push({ ...figures, hotPath: hot });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(
    table(
      ['store', 'flushed/s', 'load p50 ms', 'load p99 ms', 'loads/s (16 conc)', 'quiet p99/max ms', 'during flush p99/max ms', 'written in window'],
      results.map((r) => [
        r.store,
        fmt(r.flushPerSecond),
        fmt(r.loadMs.p50, 2),
        fmt(r.loadMs.p99, 2),
        fmt(r.concurrentLoadsPerSecond),
        `${r.hotPath.quiet.p99} / ${r.hotPath.quiet.max}`,
        `${r.hotPath.during.p99} / ${r.hotPath.during.max}`,
        fmt(r.hotPath.writtenDuringWindow),
      ]),
    ),
  );
  const file = writeResults('store', { machine: m, command: `npm run bench:store -- ${process.argv.slice(2).join(' ')}`, results });
  console.log(`results: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
