/**
 * Engine micro-benchmark: the ShardEngine alone, in a worker thread (as in the service), no HTTP,
 * no piscina, no structured clone.
 *
 *   node dist/bench/engine.js [--capacity 2000000] [--channels 100] [--ops 1000000] [--runs 7]
 *        [--batch 1000] [--load-users 10000] [--load-size 50] [--quiet-max 40] [--quiet-timeout 90]
 *
 * Scenarios (each: one untimed warm-up run, then --runs timed runs; median ns/op reported):
 *   mention-hit   Opcode.Mention (count 1) on a random cached read state
 *   ack-hit       Opcode.Ack with a newer message id on a random cached read state
 *   miss-load     a mention for a user who is not cached: the miss parks it, the user's --load-size
 *                 read states come back from a MemoryStore-like source (a Map of record arrays,
 *                 copied out as MemoryStore.load does), are installed, and the op replays.
 *                 ns per user; the store look-up share is reported separately.
 *   insert-evict  a new read state at full capacity: each insert needs a slot, so the least
 *                 recently used user (--channels read states, all dirty) is evicted and written
 *                 out as mutations. ns per inserted read state (one eviction per --channels inserts).
 * Keys are drawn uniformly at random (no hot set), the worst case for the caches.
 * Before starting, the bench waits up to --quiet-timeout s for the CPUs to be less than
 * --quiet-max % busy. Each run also records its thread CPU time / wall time ("on-CPU share").
 * Ops go through applyOps in batches of --batch, with resetOutput() after each batch, as the
 * shard worker does per task (the reply copy and postMessage are not included).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { ShardEngine } from '../workers/engine.js';
import { userFind } from '../workers/hash-index.js';
import { OpFlag, OpWord, Opcode, RsWord } from '../workers/protocol.js';
import { H_RS_COUNT, H_USER_COUNT, NIL, allocateShardBuffers, attachShardMemory } from '../workers/shard-memory.js';
import { OpList } from '../workers/op-list.js';
import { EngineDriver, addGet, addMention, addOp, type Loader } from './engine-driver.js';
import { CLK_TCK, Rng, chanHi, chanLo, channelOf, describeMachine, fmt, intFlag, machine, median, parseFlags, systemBusyTicks, table, threadCpuTicks, userHi, userLo, waitForQuiet, writeResults } from './common.js';

interface Options {
  capacity: number;
  channels: number;
  ops: number;
  runs: number;
  batch: number;
  loadUsers: number;
  loadSize: number;
}

interface ScenarioResult {
  name: string;
  unit: string;
  opsPerRun: number;
  nsPerOp: number[];
  /** thread CPU time per op (10 ms tick resolution): what the op costs when the thread is on a CPU */
  cpuNsPerOp: number[];
  /** thread CPU time / wall time of each run: below 1 means the thread waited for a CPU */
  onCpu: number[];
  medianNs: number;
  medianCpuNs: number;
  minNs: number;
  maxNs: number;
  extra?: Record<string, number>;
}

// ---- worker side -----------------------------------------------------------------------------

function newEngine(capacity: number, loader?: Loader): { engine: ShardEngine; driver: EngineDriver } {
  const m = attachShardMemory(allocateShardBuffers(capacity, Math.ceil(capacity / 4)));
  const engine = new ShardEngine(m);
  return { engine, driver: new EngineDriver(engine, loader) };
}

/** Caches users [from, to) with `channels` read states each (mentions; misses load empty). */
function fillUsers(driver: EngineDriver, from: number, to: number, channels: number): void {
  const per = Math.max(1, Math.floor(10_000 / channels));
  const ops = new OpList(per * channels);
  for (let k0 = from; k0 < to; k0 += per) {
    const end = Math.min(to, k0 + per);
    // One GET per user first (the miss parks one op), then the user's mentions are hits.
    ops.clear();
    for (let k = k0; k < end; k++) addGet(ops, userLo(k), userHi(k));
    driver.batch(ops.words, 0, ops.length);
    ops.clear();
    for (let k = k0; k < end; k++) {
      for (let j = 0; j < channels; j++) {
        const c = channelOf(k, j);
        addMention(ops, userLo(k), userHi(k), chanLo(c), chanHi(c));
      }
    }
    driver.batch(ops.words, 0, ops.length);
  }
}

function timeRuns(name: string, unit: string, o: Options, opsPerRun: number, prepare: (run: number) => OpList, apply: (ops: OpList) => void): ScenarioResult {
  const ns: number[] = [];
  const cpuNs: number[] = [];
  const onCpu: number[] = [];
  for (let run = 0; run <= o.runs; run++) {
    const ops = prepare(run);
    const c0 = threadCpuTicks();
    const t0 = process.hrtime.bigint();
    apply(ops);
    const dt = Number(process.hrtime.bigint() - t0);
    const cpu = ((threadCpuTicks() - c0) * 1e9) / CLK_TCK;
    if (run > 0) {
      // run 0 warms up the JIT
      ns.push(dt / opsPerRun);
      cpuNs.push(cpu / opsPerRun);
      onCpu.push(Math.round((cpu / dt) * 100) / 100);
    }
  }
  const r: ScenarioResult = {
    name,
    unit,
    opsPerRun,
    nsPerOp: ns,
    cpuNsPerOp: cpuNs,
    onCpu,
    medianNs: median(ns),
    medianCpuNs: median(cpuNs),
    minNs: Math.min(...ns),
    maxNs: Math.max(...ns),
  };
  parentPort!.postMessage({
    progress: `${name}: median ${r.medianNs.toFixed(0)} ns/${unit} (runs: ${ns.map((x) => x.toFixed(0)).join(' ')}; on-CPU ${onCpu.join(' ')})`,
  });
  return r;
}

function batched(driver: EngineDriver, batch: number): (ops: OpList) => void {
  return (ops) => {
    for (let i = 0; i < ops.length; i += batch) driver.batch(ops.words, i * OpWord.Size, Math.min(batch, ops.length - i));
  };
}

function workerMain(o: Options): void {
  const results: ScenarioResult[] = [];
  const users = Math.floor(o.capacity / o.channels);
  const rng = new Rng(12345);

  // Engine 1: exactly full (users x channels = capacity), for hits and for evictions.
  const t0 = Date.now();
  const full = newEngine(users * o.channels);
  fillUsers(full.driver, 0, users, o.channels);
  parentPort!.postMessage({ progress: `filled ${fmt(full.engine.m.header[H_RS_COUNT])} read states of ${fmt(users)} users in ${Date.now() - t0} ms` });

  const ops = new OpList(o.ops);
  const hits = batched(full.driver, o.batch);

  results.push(
    timeRuns('mention-hit', 'op', o, o.ops, () => {
      ops.clear();
      for (let i = 0; i < o.ops; i++) {
        const k = rng.below(users);
        const c = channelOf(k, rng.below(o.channels));
        addMention(ops, userLo(k), userHi(k), chanLo(c), chanHi(c));
      }
      return ops;
    }, hits),
  );
  const hitsBefore = full.engine.counters.hits;

  let msg = 1;
  results.push(
    timeRuns('ack-hit', 'op', o, o.ops, () => {
      ops.clear();
      for (let i = 0; i < o.ops; i++) {
        const k = rng.below(users);
        const c = channelOf(k, rng.below(o.channels));
        ops.setMessage(addOp(ops, Opcode.Ack | OpFlag.HasMsg, userLo(k), userHi(k), chanLo(c), chanHi(c)), msg++, 0x0f400000);
      }
      return ops;
    }, hits),
  );
  if (full.engine.counters.hits - hitsBefore < o.ops * (o.runs + 1)) throw new Error('ack ops were not all hits');

  // insert-evict: new users, made resident (empty load) untimed, then their read states are
  // created at full capacity, each new slot taken from an evicted least recently used user.
  let nextUser = users;
  // At most half the cache per run, so a run's new users only ever evict older users.
  const perRun = Math.max(1, Math.floor(Math.min(o.ops, users * o.channels) / 2 / o.channels)) * o.channels;
  const newUsersPerRun = perRun / o.channels;
  const evictionsBefore = full.engine.counters.evictions;
  const insert = timeRuns('insert-evict', 'read state', o, perRun, () => {
    const first = nextUser;
    nextUser += newUsersPerRun;
    const gets = new OpList(newUsersPerRun);
    for (let k = first; k < nextUser; k++) addGet(gets, userLo(k), userHi(k));
    full.driver.batch(gets.words, 0, gets.length);
    ops.clear();
    for (let j = 0; j < o.channels; j++) {
      for (let k = first; k < nextUser; k++) {
        const c = channelOf(k, j);
        addMention(ops, userLo(k), userHi(k), chanLo(c), chanHi(c));
      }
    }
    return ops;
  }, hits);
  const evictions = full.engine.counters.evictions - evictionsBefore;
  insert.extra = { evictionsPerRun: evictions / (o.runs + 1), readStatesCached: full.engine.m.header[H_RS_COUNT] };
  if (full.engine.m.header[H_RS_COUNT] !== users * o.channels) throw new Error('insert-evict: cache is not full');
  results.push(insert);

  // Engine 2: half full, so loads need no eviction. The store holds --load-size read states for
  // every user that will be missed.
  const store = new Map<string, Uint32Array>();
  const loader: Loader = (lo, hi) => {
    // Like MemoryStore.load: look the user up by a string key, copy its rows into one array.
    const rows = store.get(lo + ':' + hi);
    if (rows === undefined) return new Uint32Array(0);
    const out = new Uint32Array(rows.length);
    out.set(rows);
    return out;
  };
  const half = newEngine(o.capacity, loader);
  const halfUsers = Math.floor(o.capacity / 2 / o.channels);
  fillUsers(half.driver, 0, halfUsers, o.channels);
  const missBase = 10_000_000;
  const missUsers = o.loadUsers * (o.runs + 1);
  for (let k = missBase; k < missBase + missUsers; k++) {
    const rows = new Uint32Array(o.loadSize * RsWord.Size);
    for (let j = 0; j < o.loadSize; j++) {
      const c = channelOf(k, j);
      const r = j * RsWord.Size;
      rows[r + RsWord.ChanLo] = chanLo(c);
      rows[r + RsWord.ChanHi] = chanHi(c);
      rows[r + RsWord.MsgLo] = 1000 + j;
      rows[r + RsWord.MsgHi] = 0x0f400000;
      rows[r + RsWord.Mention] = j % 3;
      rows[r + RsWord.VerLo] = 1 + j;
    }
    store.set(userLo(k) + ':' + userHi(k), rows);
  }
  let missNext = missBase;
  const loadOps = new OpList(o.loadUsers);
  const loadBatch = Math.min(o.batch, 100);
  let runUsers: number[] = [];
  half.driver.loaderNs = 0;
  half.driver.loaded = 0;
  const missesBefore = half.engine.counters.misses;
  const miss = timeRuns(
    'miss-load',
    'user',
    o,
    o.loadUsers,
    () => {
      // Untimed: evict the previous run's users so every run starts equally full.
      for (const k of runUsers) {
        const u = userFind(half.engine.m, userLo(k), userHi(k));
        if (u !== NIL) half.engine.evict(u);
      }
      half.engine.resetOutput();
      runUsers = [];
      loadOps.clear();
      for (let i = 0; i < o.loadUsers; i++) {
        const k = missNext++;
        runUsers.push(k);
        const c = channelOf(k, i % o.loadSize);
        addMention(loadOps, userLo(k), userHi(k), chanLo(c), chanHi(c));
      }
      return loadOps;
    },
    batched(half.driver, loadBatch),
  );
  const misses = half.engine.counters.misses - missesBefore;
  if (misses !== missUsers) throw new Error(`miss-load: expected ${missUsers} misses, got ${misses}`);
  miss.extra = {
    readStatesPerLoad: o.loadSize,
    storeLookupNsPerUser: half.driver.loaderNs / half.driver.loaded,
    cachedUsers: half.engine.m.header[H_USER_COUNT],
  };
  results.push(miss);
  parentPort!.postMessage({ results });
}

// ---- main thread -----------------------------------------------------------------------------

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const o: Options = {
    capacity: intFlag(flags, 'capacity', 2_000_000),
    channels: intFlag(flags, 'channels', 100),
    ops: intFlag(flags, 'ops', 1_000_000),
    runs: intFlag(flags, 'runs', 7),
    batch: intFlag(flags, 'batch', 1000),
    loadUsers: intFlag(flags, 'load-users', 10_000),
    loadSize: intFlag(flags, 'load-size', 50),
  };
  const m0 = machine();
  console.log(describeMachine(m0));
  console.log(
    `capacity ${fmt(o.capacity)} read states (${fmt(o.capacity / o.channels)} users x ${o.channels}), ${fmt(o.ops)} ops per run, ` +
      `${o.runs} timed runs after 1 warm-up, batches of ${o.batch} ops; miss-load: ${fmt(o.loadUsers)} users x ${o.loadSize} read states per run\n`,
  );
  const quietMax = intFlag(flags, 'quiet-max', 40);
  const quietTimeout = intFlag(flags, 'quiet-timeout', 90);
  const quiet = quietTimeout > 0 ? await waitForQuiet(quietMax, quietTimeout) : undefined;
  if (quiet !== undefined) console.log(`CPUs ${quiet.busyPct}% busy (of 200%) before starting, after waiting ${quiet.waitedS} s`);
  const busy0 = systemBusyTicks();
  const wall0 = Date.now();
  const cpu0 = process.cpuUsage();
  const worker = new Worker(new URL(import.meta.url), { workerData: o });
  const results = await new Promise<ScenarioResult[]>((resolve, reject) => {
    worker.on('message', (msg: { progress?: string; results?: ScenarioResult[] }) => {
      if (msg.progress !== undefined) console.log('  ' + msg.progress);
      if (msg.results !== undefined) resolve(msg.results);
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  await worker.terminate();
  const wallS = (Date.now() - wall0) / 1000;
  const ours = process.cpuUsage(cpu0);
  const othersCpuPct = Math.round((100 * ((systemBusyTicks() - busy0) / CLK_TCK - (ours.user + ours.system) / 1e6)) / wallS);
  console.log(`\nwhole bench: ${fmt(wallS, 1)} s; other processes used ${othersCpuPct}% of one core on average meanwhile (2 cores = 200%)`);
  const m1 = machine();
  console.log(
    '\n' +
      table(
        ['scenario', 'unit', 'ops per run', 'median ns (wall)', 'min ns', 'max ns', 'median ops/s', 'median ns (thread CPU)', 'on-CPU share (median)'],
        results.map((r) => [
          r.name,
          r.unit,
          fmt(r.opsPerRun),
          fmt(r.medianNs, 0),
          fmt(r.minNs, 0),
          fmt(r.maxNs, 0),
          fmt(1e9 / r.medianNs),
          fmt(r.medianCpuNs, 0),
          fmt(median(r.onCpu), 2),
        ]),
      ),
  );
  for (const r of results) if (r.extra !== undefined) console.log(`${r.name}: ${JSON.stringify(r.extra)}`);
  const file = writeResults('engine', { bench: 'engine', argv: process.argv.slice(2), options: o, machineBefore: m0, machineAfter: m1, quietBefore: quiet, othersCpuPct, results });
  console.log(`\nload after: ${m1.uptime}\nresults: ${file}`);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  try {
    workerMain(workerData as Options);
  } catch (err) {
    parentPort!.postMessage({ progress: `worker failed: ${(err as Error).stack ?? String(err)}` });
    throw err;
  }
}
