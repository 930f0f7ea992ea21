/**
 * Memory per read state as a user sees it: start the service with the default store (SQLite),
 * default flags and the environment `npm start` gives it (bench/service-env.ts), fill it through
 * POST /v1/batch (users of 10 channels each, acks), wait for the write-back to finish, and divide the process's RSS growth by the read states held.
 *
 *   npm run bench:memory-in-use -- --read-states 10000000 [--capacity 10500000] [--max-users 1050000]
 *
 * Three RSS samples (VmRSS of the whole process, every thread): after /ready, right after the fill,
 * and once the write-back has drained and the pending-write pool had time to shrink (two idle
 * checks). While the write-back runs, a probe GETs one read state every 5 ms and records its
 * latency (the cost of the write-back to a request arriving meanwhile), and the store's write
 * counter gives read states per second into SQLite.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { describeMachine, fmt, intFlag, machine, parseFlags, writeResults } from './common.js';
import { CHANNELS_PER_USER, fillUsers, userId } from './fill-users.js';
import { Server, serverSpec } from './harness/servers.js';
import { serviceEnv } from './service-env.js';

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/**
 * Resident bytes by mapping, from /proc/PID/smaps: glibc's main heap, anonymous mappings split by
 * size, and files by name. Taken at ready and at the end, the difference says roughly where the
 * growth went; only roughly, because adjacent anonymous mappings (slab columns, V8 pages, thread
 * arenas) merge into one, so the size split does not separate the slabs from the rest.
 */
function rssByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head !== null) {
      const [lo, hi] = line.split(' ')[0].split('-').map((x) => parseInt(x, 16));
      const path = head[1];
      name = path === '' ? (hi - lo >= 64 * 2 ** 20 ? 'anon >= 64 MiB' : 'anon < 64 MiB') : path.startsWith('/') ? `file ${path.split('/').pop()}` : path;
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) out[name] = (out[name] ?? 0) + Number(rss[1]) * 1024;
  }
  return out;
}

function mappingGrowth(before: Record<string, number>, after: Record<string, number>, readStates: number): Record<string, { MiB: number; bytesPerReadState: number }> {
  const rows: [string, number][] = Object.keys(after).map((k) => [k, after[k] - (before[k] ?? 0)]);
  rows.sort((a, b) => b[1] - a[1]);
  const out: Record<string, { MiB: number; bytesPerReadState: number }> = {};
  for (const [k, d] of rows.slice(0, 8)) out[k] = { MiB: d / 2 ** 20, bytesPerReadState: d / readStates };
  return out;
}

interface Stats {
  shards: { readStates: number; dirty: number }[];
  store: { pending: number; queued: number; inFlight: number; written: number; poolSize?: number };
  threads: { thread: string; heapTotal: number; heapUsed: number; arrayBuffers: number; idleCollections: { count: number; maxSeconds: number; lastAtMs: number; trims: number; trimMaxSeconds: number; lastTrimAtMs: number } }[];
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const readStates = intFlag(flags, 'read-states', 10_000_000);
  const capacity = intFlag(flags, 'capacity', Math.ceil(readStates * 1.05));
  const maxUsers = intFlag(flags, 'max-users', Math.ceil(capacity / CHANNELS_PER_USER));
  const batchUsers = intFlag(flags, 'batch-users', 1000);
  const port = intFlag(flags, 'port', 3990);
  const m0 = machine();
  console.log(describeMachine(m0));
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-memory-'));
  const spec = serverSpec('slab', port, { capacity, maxUsers, batchOps: 0, store: 'sqlite', dataDir }, [], join(dataDir, 'service.log'));
  const server = new Server(spec);
  const pid = server.proc.pid!;
  try {
    await server.waitReady();
    await new Promise((r) => setTimeout(r, 3000));
    const rssStart = rssBytes(pid);
    const mapsStart = rssByMapping(pid);
    const written0 = ((await server.json('/v1/stats')) as Stats).store.written;
    console.log(`${server.commandLine}\nready: RSS ${fmt(rssStart / 2 ** 20)} MiB`);

    const users = Math.ceil(readStates / CHANNELS_PER_USER);
    const t0 = Date.now();
    const fillSeconds = await fillUsers(server, users, batchUsers, (n, sec) => console.log(`  fill: ${fmt(n)} read states, ${fmt(n / sec)}/s, RSS ${fmt(rssBytes(pid) / 2 ** 20)} MiB`));
    const filled = users * CHANNELS_PER_USER;
    const rssAfterFill = rssBytes(pid);
    console.log(`filled ${fmt(filled)} read states in ${fmt(fillSeconds, 1)} s (${fmt(filled / fillSeconds)}/s); RSS ${fmt(rssAfterFill / 2 ** 20)} MiB`);

    // The write-back: --flush-delay (30 s) after each change, every read state goes to SQLite; with
    // a fill longer than that it starts during the fill, so its rate is taken over its whole span.
    const probe = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    let probing = true;
    const probeLoop = (async () => {
      let k = 0;
      while (probing) {
        const intended = performance.now();
        const u = userId((k++ * 7919) % users);
        const res = await fetch(`${server.url}/v1/users/${u}/read-states`);
        await res.arrayBuffer();
        probe.recordValue(Math.max(1, Math.round((performance.now() - intended) * 1000)));
        const wait = intended + 5 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    })();
    let lastWriteAt = 0;
    let written = written0;
    for (;;) {
      await new Promise((r) => setTimeout(r, 500));
      const s = (await server.json('/v1/stats')) as Stats;
      if (s.store.written > written) {
        written = s.store.written;
        lastWriteAt = Date.now();
      }
      const unflushed = s.shards.reduce((a, x) => a + x.dirty, 0) + s.store.pending + s.store.queued + s.store.inFlight;
      if (unflushed === 0 && written - written0 >= filled) break;
      if (Date.now() - t0 > 3_600_000) throw new Error(`write-back not finished after an hour: ${unflushed} unflushed`);
    }
    probing = false;
    await probeLoop;
    const firstWriteAt = t0 + 30_000; // the first changes come due a flush delay after the fill began
    const writeBackSeconds = (lastWriteAt - firstWriteAt) / 1000;
    const writeBackRate = (written - written0) / Math.max(writeBackSeconds, 0.001);
    const rssAfterWriteBack = rssBytes(pid);
    console.log(`write-back: ${fmt(written - written0)} read states in ${fmt(writeBackSeconds, 1)} s (${fmt(writeBackRate)}/s); probe p50/p99/max ${fmt(probe.getValueAtPercentile(50) / 1000, 2)}/${fmt(probe.getValueAtPercentile(99) / 1000, 2)}/${fmt(probe.maxValue / 1000, 1)} ms over ${fmt(probe.totalCount)} GETs`);
    // Idle until the HTTP thread has trimmed the freed heap after every thread's collection since
    // the write-back (the trim waits for the whole process to be quiet), at least 25 s (two
    // checks of the pending pool, 10 s apart), at most 120 s.
    const mainOf = (x: Stats) => x.threads.find((t) => t.thread === 'main')?.idleCollections ?? { trims: 0, lastTrimAtMs: 0 };
    const before = mainOf((await server.json('/v1/stats')) as Stats).trims;
    const idleFrom = Date.now();
    for (;;) {
      await new Promise((r) => setTimeout(r, 2_000));
      const x = (await server.json('/v1/stats')) as Stats;
      const main = mainOf(x);
      const last = main.trims > before && x.threads.every((t) => t.idleCollections.lastAtMs <= main.lastTrimAtMs);
      if ((last && Date.now() - idleFrom >= 25_000) || Date.now() - idleFrom >= 120_000) break;
    }
    const settleSeconds = (Date.now() - idleFrom) / 1000;
    console.log(`settled: ${fmt(settleSeconds, 1)} s idle`);
    const rssSettled = rssBytes(pid);
    const mapsSettled = rssByMapping(pid);
    const stats = (await server.json('/v1/stats')) as Stats;
    const held = stats.shards.reduce((a, x) => a + x.readStates, 0);
    const per = (rss: number) => (rss - rssStart) / held;
    const result = {
      machine: m0,
      command: `npm run bench:memory-in-use -- ${process.argv.slice(2).join(' ')}`,
      service: server.commandLine,
      readStates: held,
      capacity,
      maxUsers,
      fill: { seconds: fillSeconds, perSecond: filled / fillSeconds, batchOps: batchUsers * CHANNELS_PER_USER },
      rssMiB: { ready: rssStart / 2 ** 20, afterFill: rssAfterFill / 2 ** 20, afterWriteBack: rssAfterWriteBack / 2 ** 20, settled: rssSettled / 2 ** 20 },
      bytesPerReadState: { afterFill: per(rssAfterFill), afterWriteBack: per(rssAfterWriteBack), settled: per(rssSettled) },
      settleSeconds,
      writeBack: {
        readStates: written - written0,
        seconds: writeBackSeconds,
        perSecond: writeBackRate,
        probeMs: { p50: probe.getValueAtPercentile(50) / 1000, p99: probe.getValueAtPercentile(99) / 1000, max: probe.maxValue / 1000, count: probe.totalCount },
      },
      pendingPoolEntries: stats.store.poolSize ?? null,
      settledGrowthByMapping: mappingGrowth(mapsStart, mapsSettled, held),
      // part of the anonymous mappings above: each thread's V8 heap and its ArrayBuffers' memory
      settledThreadsMiB: stats.threads.map((t) => ({ thread: t.thread, heapTotal: t.heapTotal / 2 ** 20, heapUsed: t.heapUsed / 2 ** 20, arrayBuffers: t.arrayBuffers / 2 ** 20 })),
      // Each idle collection (and the HTTP thread's malloc trim) pauses its thread: what a request arriving then waits.
      idleCollections: stats.threads.map((t) => ({ thread: t.thread, count: t.idleCollections.count, maxMs: t.idleCollections.maxSeconds * 1000, trimMaxMs: t.idleCollections.trimMaxSeconds * 1000 })),
      env: { MALLOC_MMAP_THRESHOLD_: serviceEnv().MALLOC_MMAP_THRESHOLD_ ?? null },
    };
    console.log(
      `RSS growth per read state (${fmt(held)} held): ${fmt(result.bytesPerReadState.afterFill, 1)} B after the fill, ` +
        `${fmt(result.bytesPerReadState.afterWriteBack, 1)} B after the write-back, ${fmt(result.bytesPerReadState.settled, 1)} B settled`,
    );
    for (const [k, v] of Object.entries(result.settledGrowthByMapping)) console.log(`  ${k}: ${fmt(v.MiB, 1)} MiB, ${fmt(v.bytesPerReadState, 1)} B per read state`);
    for (const t of result.settledThreadsMiB) console.log(`  thread ${t.thread}: V8 heap ${fmt(t.heapTotal, 1)} MiB (${fmt(t.heapUsed, 1)} used), ArrayBuffers ${fmt(t.arrayBuffers, 1)} MiB`);
    for (const t of result.idleCollections) console.log(`  thread ${t.thread}: ${t.count} idle collections, longest ${fmt(t.maxMs, 1)} ms; malloc trim at most ${fmt(t.trimMaxMs, 1)} ms`);
    console.log(`wrote ${writeResults(`memory-in-use-${readStates}-cap${capacity}`, result)}`);
  } finally {
    await server.stop(200_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
