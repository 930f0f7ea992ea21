/**
 * Users the service does not hold, through the API with the default store (SQLite):
 *
 *   npm run bench:cold-users -- [--users 200000] [--batch-users 1000] [--readers 16] [--client fetch|wrk] [--cpu-prof]
 *
 * 1. absent from the store: /v1/batch requests of `batch-users` new users x 10 channels (acks),
 *    two in flight, one after another: every user is a miss and a store load that finds nothing;
 * 2. present in the store, after a restart: once the write-back has drained the service is
 *    stopped and started again on the same data dir, and `readers` concurrent connections each
 *    GET one user's read states at a time until every user has been read once (a connect storm
 *    after a deploy: every user is a miss and a load of 10 rows). `--client wrk`: the readers are
 *    wrk's connections (C, so the client is not what limits it) for as long as distinct users last
 *    (`--wrk-seconds`, each request another user, checked to be fewer than there are users);
 * 3. the same after another restart, read in /v1/batch requests of `batch-users` gets.
 * Prints users per second for both and the time until every user was read once, and with
 * `--client wrk` each service thread's CPU during the reads (`--cpu-prof`: the restarted service
 * runs under `node --cpu-prof`, and the samples taken during wrk's reads are summarised).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import { cpuDelta, describeMachine, fmt, intFlag, machine, parseFlags, threadTicks, writeResults, type ThreadCpu } from './common.js';
import { formatSummary, summarize, type ProfileSummary } from './cpuprofile-summary.js';
import { CHANNELS_PER_USER, fillUsers, userId } from './fill-users.js';
import { Server, serverSpec } from './harness/servers.js';
import { runWrk, wrkCountingScript } from './wrk.js';

interface Stats {
  shards: { dirty: number }[];
  store: { pending: number; queued: number; inFlight: number };
}

async function drained(server: Server): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const s = (await server.json('/v1/stats')) as Stats;
    if (s.shards.reduce((a, x) => a + x.dirty, 0) + s.store.pending + s.store.queued + s.store.inFlight === 0) return (Date.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const users = intFlag(flags, 'users', 200_000);
  const batchUsers = intFlag(flags, 'batch-users', 1000);
  const readers = intFlag(flags, 'readers', 16);
  const client = flags.get('client') ?? 'fetch';
  if (client !== 'fetch' && client !== 'wrk') throw new Error('--client must be fetch or wrk');
  const wrkSeconds = intFlag(flags, 'wrk-seconds', 8);
  const port = intFlag(flags, 'port', 3991);
  const cpuProf = flags.has('cpu-prof');
  const m0 = machine();
  console.log(describeMachine(m0));
  const dataDir = mkdtempSync(join(tmpdir(), 'rs-cold-'));
  const capacity = Math.ceil(users * CHANNELS_PER_USER * 1.05);
  const spec = serverSpec('slab', port, { capacity, maxUsers: Math.ceil(users * 1.05), batchOps: 0, store: 'sqlite', dataDir }, [], join(dataDir, 'service.log'));
  const profDir = join(dataDir, 'profiles');
  // Only the restarted service is profiled: the fill is not what this measures.
  const readSpec = cpuProf ? { ...spec, nodeFlags: ['--cpu-prof', '--cpu-prof-dir', profDir] } : spec;
  if (cpuProf) mkdirSync(profDir);
  let server = new Server(spec);
  try {
    await server.waitReady();
    console.log(server.commandLine);
    const fillSeconds = await fillUsers(server, users, batchUsers, (n, s) => console.log(`  absent users: ${fmt(n / CHANNELS_PER_USER)} users, ${fmt(n / CHANNELS_PER_USER / s)}/s`));
    const absentPerSecond = users / fillSeconds;
    console.log(`absent from the store: ${fmt(users)} users (${fmt(users * CHANNELS_PER_USER)} ops) in ${fmt(fillSeconds, 1)} s: ${fmt(absentPerSecond)} users/s, ${fmt(absentPerSecond * CHANNELS_PER_USER)} ops/s`);
    const drainSeconds = await drained(server);
    const stop = await server.stop(200_000);
    console.log(`write-back drained ${fmt(drainSeconds, 1)} s after the fill; stopped in ${fmt(stop.seconds, 1)} s (exit ${stop.code})`);

    const t1 = Date.now();
    server = new Server(readSpec);
    await server.waitReady();
    const startSeconds = (Date.now() - t1) / 1000;
    const lat = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
    let next = 0;
    let wrong = 0;
    let readSeconds: number;
    let presentPerSecond: number;
    let wrkCpuPct: number | null = null;
    let threads: ThreadCpu[] | null = null;
    let profiles: ProfileSummary[] = [];
    let latencyMs: { p50: number; p99: number; max: number };
    if (client === 'wrk') {
      // userId(k) for k = 0, 1, ...: ids from userId(0) up
      const script = wrkCountingScript('/v1/users/', Number(userId(0)), '/read-states');
      const pid = server.proc.pid ?? -1;
      const ticks0 = threadTicks(pid);
      const from = Number(process.hrtime.bigint() / 1000n);
      const w = await runWrk({ url: server.url, connections: readers, seconds: wrkSeconds, script });
      const to = Number(process.hrtime.bigint() / 1000n);
      threads = cpuDelta(pid, ticks0, w.durationUs / 1e6);
      // Every request another user: more requests than users would have read cached ones again.
      if (w.requests > users) throw new Error(`wrk sent ${w.requests} requests for ${users} users: use more --users or fewer --wrk-seconds`);
      readSeconds = w.durationUs / 1e6;
      presentPerSecond = w.requests / readSeconds;
      wrong = w.non2xx + w.errors;
      wrkCpuPct = Math.round(w.cpuTicks / readSeconds);
      latencyMs = { p50: w.p50 / 1000, p99: w.p99 / 1000, max: w.max / 1000 };
      console.log(
        `present in the store, after a restart (ready in ${fmt(startSeconds, 1)} s): ${fmt(w.requests)} distinct users read by wrk's ${readers} connections in ${fmt(readSeconds, 1)} s: ` +
          `${fmt(presentPerSecond)} users/s; latency p50/p99/max ${fmt(w.p50 / 1000, 2)}/${fmt(w.p99 / 1000, 2)}/${fmt(w.max / 1000, 1)} ms; wrk CPU ${wrkCpuPct}%; ${wrong} non-2xx or errors`,
      );
      console.log(`  service threads (% of a core): ${threads.map((x) => `${x.main ? 'main' : x.comm + '/' + x.tid} ${x.pct}`).join(', ')}`);
      if (cpuProf) {
        await server.stop(200_000);
        profiles = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => ({ ...summarize(join(profDir, f), from, to, 30), file: f }));
        for (const p of profiles.filter((x) => x.sampledMs > 0)) console.log('\n' + formatSummary(p, 25));
      }
    } else {
      const t2 = Date.now();
      const reader = async (): Promise<void> => {
        while (next < users) {
          const k = next++;
          const t = performance.now();
          const res = await fetch(`${server.url}/v1/users/${userId(k)}/read-states`);
          const body = (await res.json()) as { read_states?: unknown[] };
          lat.recordValue(Math.max(1, Math.round((performance.now() - t) * 1000)));
          if (res.status !== 200 || body.read_states?.length !== CHANNELS_PER_USER) wrong++;
        }
      };
      await Promise.all(Array.from({ length: readers }, reader));
      readSeconds = (Date.now() - t2) / 1000;
      presentPerSecond = users / readSeconds;
      latencyMs = { p50: lat.getValueAtPercentile(50) / 1000, p99: lat.getValueAtPercentile(99) / 1000, max: lat.maxValue / 1000 };
      console.log(
        `present in the store, after a restart (ready in ${fmt(startSeconds, 1)} s): every one of ${fmt(users)} users read once in ${fmt(readSeconds, 1)} s by ${readers} connections: ` +
          `${fmt(presentPerSecond)} users/s; latency p50/p99/max ${fmt(latencyMs.p50, 2)}/${fmt(latencyMs.p99, 2)}/${fmt(latencyMs.max, 1)} ms; ${wrong} wrong answers`,
      );
    }
    // The same after another restart, the reader batching: /v1/batch of `batch-users` gets (one
    // channel of each user; the whole user is loaded), two in flight.
    await server.stop(200_000);
    server = new Server(spec);
    await server.waitReady();
    let nextBatch = 0;
    const t3 = Date.now();
    const batchReader = async (): Promise<void> => {
      while (nextBatch < users) {
        const first = nextBatch;
        const n = Math.min(batchUsers, users - first);
        nextBatch += n;
        const ops: string[] = [];
        for (let k = first; k < first + n; k++) ops.push(`{"op":"get","user_id":"${userId(k)}","channel_id":"${2_000_000 + (k % 1000)}"}`);
        const res = await fetch(server.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"ops":[${ops.join(',')}]}` });
        const text = await res.text();
        if (res.status !== 200 || text.includes('"status":4') || text.includes('"status":5')) wrong++;
      }
    };
    await Promise.all([batchReader(), batchReader()]);
    const batchSeconds = (Date.now() - t3) / 1000;
    console.log(`present, after a restart, read in batches of ${batchUsers} users: ${fmt(users)} users in ${fmt(batchSeconds, 1)} s: ${fmt(users / batchSeconds)} users/s; ${wrong} wrong answers`);
    const file = writeResults(`cold-users-${users}`, {
      machine: m0,
      command: `npm run bench:cold-users -- ${process.argv.slice(2).join(' ')}`,
      service: server.commandLine,
      users,
      channelsPerUser: CHANNELS_PER_USER,
      absent: { batchUsers, seconds: fillSeconds, usersPerSecond: absentPerSecond, opsPerSecond: absentPerSecond * CHANNELS_PER_USER },
      drainSeconds,
      restart: { stopSeconds: stop.seconds, readySeconds: startSeconds },
      presentBatched: { batchUsers, seconds: batchSeconds, usersPerSecond: users / batchSeconds },
      present: { client, readers, seconds: readSeconds, usersPerSecond: presentPerSecond, latencyMs, clientCpuPct: wrkCpuPct, serviceThreads: threads, wrong },
      profiles,
    });
    console.log(`wrote ${file}`);
    if (wrong > 0) process.exitCode = 1;
  } finally {
    await server.stop(200_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
