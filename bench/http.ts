/**
 * HTTP closed-loop benchmark: the real service against a bare fastify "ceiling", driven by
 * autocannon from this process.
 *
 *   node dist/bench/http.js [--duration 15] [--warmup 3] [--connections 50] [--pipelining 1]
 *        [--targets slab,ceiling] [--scenarios mention,ack,get,batch,connect,connect-delta] [--batch-ops 100]
 *        [--prefill-users 20000] [--prefill-channels 10] [--shards 1] [--cpu-prof]
 *        [--quiet-max 40] [--quiet-timeout 90] [--client autocannon|wrk] [--wrk-variants 20000]
 *        [--rounds 1] [--other-build DIR]
 *
 * --other-build DIR adds the target `other`: the service built in another checkout (DIR/dist/src/
 * main.js, run from DIR with the same flags as slab, pre-filled the same way), so two builds take
 * turns in one run next to the bare route, e.g. `--targets slab,other,ceiling --other-build ../b`;
 * the rounds summary then gives each build's ratio to the bare route and other / slab per round.
 *
 * --rounds N measures each scenario N times, the targets taking turns, in reverse order every
 * other round (slab, ceiling, ceiling, slab, ...: a target that always ran second would carry
 * whatever the first one left behind), and reports, per scenario, the median of each target's
 * req/s and the median of the rounds' ratios. On a shared machine the throughput of a thread
 * hand-off drifts far more from one run to the next than the bare route's does; runs next to each
 * other, paired, keep the ratio honest. Each run records the hypervisor's steal time (% of one
 * core), which the "others" figure includes.
 *
 * --client wrk drives the load with wrk (C, epoll; Debian's package) instead of autocannon, so the
 * load generator is not what limits the bare route: wrk sends `--wrk-variants` requests built up
 * front (a Lua table) in turn on one thread; its CPU is read from /proc and reported as the
 * driver's. wrk is closed-loop only; its latency percentiles (µs) replace the per-response HDR
 * histogram.
 *
 * - slab: `node dist/src/main.js --port P --shards 1 --log-level warn --store memory` as a child
 *   process (the in-process MemoryStore; if this build has no --store flag, its default store).
 * - ceiling: `node dist/bench/ceiling-server.js` as another child process: same routes, fastify's
 *   JSON body parsing, a constant answer of the same size (see ceiling-server.ts).
 * Each (scenario, target) runs a warm-up, then a measured run. Every request has its own user and
 * channel (a random pre-filled read state) and, for writes, a newer message id. Latency is
 * recorded per response (hdr-histogram-js, microseconds) from autocannon's 'response' event;
 * autocannon's own percentiles (milliseconds) are kept alongside. The per-thread CPU time of the
 * server process comes from /proc/<pid>/task/<tid>/stat.
 * --cpu-prof starts the service under `node --cpu-prof` (profiles in the temp directory) and prints
 * the top functions of each thread's profile for the samples taken during the last measured run.
 * Before each run the bench waits up to --quiet-timeout s for the machine's CPUs to be less than
 * --quiet-max % busy (other processes), then runs anyway; what it saw is in the results.
 * Figures that are robust to CPU contention: CPU µs per request of the server's main thread and
 * of the whole server (from /proc), next to req/s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import * as hdr from 'hdr-histogram-js';
import { formatSummary, summarize, type ProfileSummary } from './cpuprofile-summary.js';
import {
  REPO_ROOT,
  CLK_TCK,
  Rng,
  chanHi,
  chanLo,
  channelOf,
  cpuDelta,
  describeMachine,
  fmt,
  idString,
  intFlag,
  machine,
  median,
  parseFlags,
  strFlag,
  systemBusyTicks,
  stealPctSince,
  systemStealTicks,
  table,
  type ThreadCpu,
  threadTicks,
  userHi,
  userLo,
  waitForQuiet,
  writeResults,
} from './common.js';
import { runWrk, wrkScript } from './wrk.js';
import { serviceEnv } from './service-env.js';

const flags = parseFlags(process.argv.slice(2));
const duration = intFlag(flags, 'duration', 15);
const warmup = intFlag(flags, 'warmup', 3);
const connections = intFlag(flags, 'connections', 50);
const pipelining = intFlag(flags, 'pipelining', 1);
const targetNames = strFlag(flags, 'targets', 'slab,ceiling').split(',');
const otherBuild = strFlag(flags, 'other-build', '');
const scenarioNames = strFlag(flags, 'scenarios', 'mention,ack,get,batch').split(',');
const batchOps = intFlag(flags, 'batch-ops', 100);
const prefillUsers = intFlag(flags, 'prefill-users', 20_000);
const prefillChannels = intFlag(flags, 'prefill-channels', 10);
const shards = intFlag(flags, 'shards', 1);
const cpuProf = flags.has('cpu-prof');
const basePort = intFlag(flags, 'port', 20_000 + Math.floor(Math.random() * 20_000));
const client = strFlag(flags, 'client', 'autocannon');
if (client !== 'autocannon' && client !== 'wrk') throw new Error(`--client must be autocannon or wrk, got ${client}`);
const wrkVariants = intFlag(flags, 'wrk-variants', 20_000);
const rounds = intFlag(flags, 'rounds', 1);
if (rounds < 1) throw new Error('--rounds must be at least 1');
// Before each measured run, wait up to --quiet-timeout s for other processes to leave the CPUs
// mostly idle (--quiet-max: % of one core busy over 3 s); the run goes ahead either way.
const quietMax = intFlag(flags, 'quiet-max', 40);
const quietTimeout = intFlag(flags, 'quiet-timeout', 90);

// ---- processes -------------------------------------------------------------------------------

interface Target {
  name: string;
  url: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
  args: string[];
}

function launch(name: string, args: string[], port: number, cwd = REPO_ROOT): Target {
  const proc = spawn(process.execPath, args, { cwd, env: serviceEnv(), stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { name, url: `http://127.0.0.1:${port}`, proc, exited, args };
}

async function waitReady(t: Target, timeoutMs = 60_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void t.exited.then(() => (exited = true));
  while (Date.now() < deadline && !exited) {
    try {
      const r = await fetch(t.url + '/ready');
      if (r.status === 200) return true;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function startSlab(port: number, profDir: string | undefined, name = 'slab', root = REPO_ROOT): Promise<Target> {
  const prof = profDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const base = [...prof, 'dist/src/main.js', '--port', String(port), '--shards', String(shards), '--log-level', 'warn'];
  let t = launch(name, [...base, '--store', 'memory'], port, root);
  if (!(await waitReady(t))) {
    // A build without the --store flag exits with a config error: its default store is the memory one.
    t.proc.kill('SIGKILL');
    await t.exited;
    t = launch(name, base, port, root);
    if (!(await waitReady(t))) throw new Error('the service did not become ready');
  }
  return t;
}

async function startCeiling(port: number): Promise<Target> {
  const t = launch('ceiling', ['dist/bench/ceiling-server.js', '--port', String(port), '--batch-ops', String(batchOps)], port);
  if (!(await waitReady(t))) throw new Error('the ceiling server did not become ready');
  return t;
}

async function stop(t: Target): Promise<number | null> {
  t.proc.kill('SIGTERM');
  const timer = setTimeout(() => t.proc.kill('SIGKILL'), 30_000);
  const code = await t.exited;
  clearTimeout(timer);
  return code;
}

// ---- requests --------------------------------------------------------------------------------

const userIds: string[] = [];
const readStatePaths: string[] = [];
const channelIds: string[] = [];
for (let k = 0; k < prefillUsers; k++) {
  const u = idString(userLo(k), userHi(k));
  userIds.push(u);
  for (let j = 0; j < prefillChannels; j++) {
    const c = channelOf(k, j);
    const cs = idString(chanLo(c), chanHi(c));
    channelIds.push(cs);
    readStatePaths.push(`/v1/users/${u}/read-states/${cs}`);
  }
}
const rng = new Rng(987654321);
/** each pre-filled user's version right after the pre-fill (connect-delta's `since`) */
const userVersions: number[] = [];
let msgCounter = 1;
/** A newer message id on every call (19 digits, below 2^64). */
function nextMessageId(): string {
  return '11010' + String(msgCounter++).padStart(14, '0');
}

interface BuiltRequest {
  method: string;
  path: string;
  body?: string;
}

interface Scenario {
  name: string;
  opsPerRequest: number;
  build(): BuiltRequest;
}

const SCENARIOS: Record<string, Scenario> = {
  mention: {
    name: 'mention',
    opsPerRequest: 1,
    build: () => ({
      method: 'POST',
      path: readStatePaths[rng.below(readStatePaths.length)] + '/mentions',
      body: `{"message_id":"${nextMessageId()}","count":1}`,
    }),
  },
  ack: {
    name: 'ack',
    opsPerRequest: 1,
    build: () => ({ method: 'POST', path: readStatePaths[rng.below(readStatePaths.length)] + '/ack', body: `{"message_id":"${nextMessageId()}"}` }),
  },
  get: {
    name: 'get',
    opsPerRequest: 1,
    build: () => ({ method: 'GET', path: readStatePaths[rng.below(readStatePaths.length)] }),
  },
  // A gateway's connect: all of a user's read states (10 here).
  connect: {
    name: 'connect',
    opsPerRequest: 1,
    build: () => ({ method: 'GET', path: `/v1/users/${userIds[rng.below(userIds.length)]}/read-states` }),
  },
  // A reconnect with delta sync: only what changed since the version the client got after the
  // pre-fill (the scenarios run before this one changed some of the read states meanwhile).
  'connect-delta': {
    name: 'connect-delta',
    opsPerRequest: 1,
    build: () => {
      const k = rng.below(userIds.length);
      return { method: 'GET', path: `/v1/users/${userIds[k]}/read-states?since=${userVersions[k] ?? 0}` };
    },
  },
  batch: {
    name: 'batch',
    opsPerRequest: batchOps,
    build: () => {
      // Half mentions, half acks, each on a random pre-filled read state of a random user.
      const parts: string[] = new Array(batchOps);
      for (let i = 0; i < batchOps; i++) {
        const x = rng.below(readStatePaths.length);
        const u = userIds[Math.floor(x / prefillChannels)];
        const op = i % 2 === 0 ? 'mention' : 'ack';
        parts[i] = `{"op":"${op}","user_id":"${u}","channel_id":"${channelIds[x]}","message_id":"${nextMessageId()}"}`;
      }
      return { method: 'POST', path: '/v1/batch', body: `{"ops":[${parts.join(',')}]}` };
    },
  },
};

// ---- driving ---------------------------------------------------------------------------------

interface RunResult {
  scenario: string;
  target: string;
  /** 1-based: which of the --rounds this run was */
  round: number;
  durationS: number;
  requests: number;
  reqPerSec: number;
  opsPerSec: number;
  statuses: Record<string, number>;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** per-response latency, µs (hdr-histogram-js) */
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number; count: number };
  /** autocannon's own latency figures, ms */
  autocannonMs: { p50: number; p90: number; p99: number; p99_9: number; max: number; mean: number };
  serverThreads: ThreadCpu[];
  serverCpuPct: number;
  driverCpuPct: number;
  /** CPU used by every other process on the machine during the run, % of one core (steal included) */
  othersCpuPct: number;
  /** CPU time the hypervisor took from the VM during the run, % of one core */
  stealPct: number;
  loadavgStart: number[];
  loadavgEnd: number[];
  /** the CPUs' busy share (% of one core) just before the run, and how long the bench waited for it */
  quietBefore?: { busyPct: number; waitedS: number; quiet: boolean };
  /** monotonic µs (process.hrtime clock), for matching CPU profile samples */
  windowUs: [number, number];
}

async function drive(t: Target, s: Scenario, seconds: number): Promise<RunResult> {
  const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });
  const statuses: Record<string, number> = {};
  const headers: Record<string, string> = s.build().body !== undefined ? { 'content-type': 'application/json' } : {};
  const inst = autocannon({
    url: t.url,
    connections,
    pipelining,
    duration: seconds,
    timeout: 30,
    requests: [
      {
        method: s.build().method,
        path: '/',
        headers,
        setupRequest: (req) => {
          const r = s.build();
          return { ...req, method: r.method, path: r.path, body: r.body };
        },
      },
    ],
  });
  inst.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    h.recordValue(Math.max(1, Math.round(responseTimeMs * 1000)));
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  const pid = t.proc.pid!;
  const la0 = loadavg();
  const ticks0 = threadTicks(pid);
  const cpu0 = process.cpuUsage();
  const busy0 = systemBusyTicks();
  const steal0 = systemStealTicks();
  const w0 = process.hrtime.bigint();
  const r = await inst;
  const w1 = process.hrtime.bigint();
  const wallS = Number(w1 - w0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const busyPct = (100 * (systemBusyTicks() - busy0)) / CLK_TCK / wallS;
  const threads = cpuDelta(pid, ticks0, wallS);
  const total = Object.values(statuses).reduce((a, b) => a + b, 0);
  const reqPerSec = total / r.duration;
  const res: RunResult = {
    scenario: s.name,
    round: 1,
    target: t.name,
    durationS: r.duration,
    requests: total,
    reqPerSec,
    opsPerSec: reqPerSec * s.opsPerRequest,
    statuses,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    latencyUs: {
      p50: h.getValueAtPercentile(50),
      p90: h.getValueAtPercentile(90),
      p99: h.getValueAtPercentile(99),
      p999: h.getValueAtPercentile(99.9),
      max: h.maxValue,
      mean: Math.round(h.mean),
      count: h.totalCount,
    },
    autocannonMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, p99_9: r.latency.p99_9, max: r.latency.max, mean: r.latency.mean },
    serverThreads: threads,
    serverCpuPct: Math.round(threads.reduce((a, x) => a + x.pct, 0) * 10) / 10,
    driverCpuPct: Math.round(((cpu.user + cpu.system) / 1e6 / wallS) * 1000) / 10,
    othersCpuPct: 0,
    stealPct: 0,
    loadavgStart: la0.map((x) => Math.round(x * 100) / 100),
    loadavgEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    windowUs: [Number(w0 / 1000n), Number(w1 / 1000n)],
  };
  res.othersCpuPct = Math.max(0, Math.round((busyPct - res.serverCpuPct - res.driverCpuPct) * 10) / 10);
  res.stealPct = stealPctSince(steal0, wallS);
  h.destroy();
  return res;
}

async function driveWrk(t: Target, s: Scenario, seconds: number): Promise<RunResult> {
  // Bodies of batch requests are ~10 kB: fewer variants keep the script small.
  const variants = s.opsPerRequest > 1 ? Math.min(wrkVariants, 1000) : wrkVariants;
  const pid = t.proc.pid!;
  let la0: number[] = [];
  let ticks0 = new Map<number, { comm: string; ticks: number }>();
  let busy0 = 0;
  let steal0 = 0;
  let w0 = 0n;
  const w = await runWrk({
    url: t.url,
    connections,
    seconds,
    script: wrkScript(t.url, variants, s.build),
    onStart: () => {
      la0 = loadavg();
      ticks0 = threadTicks(pid);
      busy0 = systemBusyTicks();
      steal0 = systemStealTicks();
      w0 = process.hrtime.bigint();
    },
  });
  const w1 = process.hrtime.bigint();
  const wallS = Number(w1 - w0) / 1e9;
  const busyPct = (100 * (systemBusyTicks() - busy0)) / CLK_TCK / wallS;
  const threads = cpuDelta(pid, ticks0, wallS);
  if (w.non2xx > 0) throw new Error(`${t.name} ${s.name}: ${w.non2xx} of ${w.requests} answers were not 2xx (wrk)`);
  const durationS = w.durationUs / 1e6;
  const reqPerSec = w.requests / durationS;
  const ms = (us: number) => Math.round(us) / 1000;
  const res: RunResult = {
    scenario: s.name,
    round: 1,
    target: t.name,
    durationS,
    requests: w.requests,
    reqPerSec,
    opsPerSec: reqPerSec * s.opsPerRequest,
    statuses: {},
    non2xx: w.non2xx,
    errors: w.errors,
    timeouts: w.timeouts,
    latencyUs: { p50: w.p50, p90: w.p90, p99: w.p99, p999: w.p999, max: w.max, mean: Math.round(w.mean), count: w.requests },
    autocannonMs: { p50: ms(w.p50), p90: ms(w.p90), p99: ms(w.p99), p99_9: ms(w.p999), max: ms(w.max), mean: ms(w.mean) },
    serverThreads: threads,
    serverCpuPct: Math.round(threads.reduce((a, x) => a + x.pct, 0) * 10) / 10,
    // wrk's CPU only (ticks sampled every 200 ms: up to 200 ms of its time may be missed)
    driverCpuPct: Math.round(((100 * w.cpuTicks) / CLK_TCK / wallS) * 10) / 10,
    othersCpuPct: 0,
    stealPct: 0,
    loadavgStart: la0.map((x) => Math.round(x * 100) / 100),
    loadavgEnd: loadavg().map((x) => Math.round(x * 100) / 100),
    windowUs: [Number(w0 / 1000n), Number(w1 / 1000n)],
  };
  res.othersCpuPct = Math.max(0, Math.round((busyPct - res.serverCpuPct - res.driverCpuPct) * 10) / 10);
  res.stealPct = stealPctSince(steal0, wallS);
  return res;
}

async function smoke(t: Target, s: Scenario): Promise<void> {
  const r = s.build();
  const res = await fetch(t.url + r.path, {
    method: r.method,
    headers: r.body !== undefined ? { 'content-type': 'application/json' } : {},
    body: r.body,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${t.name} ${s.name}: ${res.status} ${text.slice(0, 300)}`);
  if (s.name === 'batch') {
    const statuses = (JSON.parse(text) as { results: { status: number }[] }).results.map((x) => x.status);
    if (statuses.length !== batchOps || statuses.some((x) => x !== 200)) throw new Error(`${t.name} batch: inner statuses ${statuses.join(',')}`);
  }
}

async function prefill(t: Target): Promise<number> {
  const ops: string[] = [];
  let sent = 0;
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return;
    const res = await fetch(t.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"ops":[${ops.join(',')}]}` });
    if (res.status !== 200) throw new Error(`prefill: ${res.status} ${(await res.text()).slice(0, 300)}`);
    await res.arrayBuffer();
    sent += ops.length;
    ops.length = 0;
  };
  for (let k = 0; k < prefillUsers; k++) {
    for (let j = 0; j < prefillChannels; j++) {
      ops.push(`{"op":"mention","user_id":"${userIds[k]}","channel_id":"${channelIds[k * prefillChannels + j]}"}`);
      if (ops.length === 10_000) await flush();
    }
  }
  await flush();
  return sent;
}

async function stats(t: Target): Promise<unknown> {
  try {
    const r = await fetch(t.url + '/v1/stats');
    return await r.json();
  } catch {
    return undefined;
  }
}

/** CPU time the server spent per request: its main thread only, or all its threads. */
function cpuUsPerReq(r: RunResult, mainOnly: boolean): number {
  const pct = mainOnly ? (r.serverThreads.find((t) => t.main)?.pct ?? 0) : r.serverCpuPct;
  return r.reqPerSec > 0 ? (pct / 100) * 1e6 / r.reqPerSec : 0;
}

interface RoundsSummary {
  scenario: string;
  /** the service target (slab, or other: --other-build) */
  target: string;
  slabReqPerSec: number;
  ceilingReqPerSec: number;
  /** median over rounds of slab / ceiling req/s, each round's two runs side by side */
  ratio: number;
  ratios: number[];
  slabMainUs: number;
  ceilingMainUs: number;
  /** the most steal time any run of the scenario saw, % of one core */
  maxStealPct: number;
  /** other only: its req/s over slab's, per round, and their median */
  overSlab?: { ratio: number; ratios: number[] };
}

/** Per scenario with both targets: medians over the rounds, and the median of the paired ratios. */
function roundsSummary(results: RunResult[]): RoundsSummary[] {
  const out: RoundsSummary[] = [];
  for (const scenario of new Set(results.map((r) => r.scenario))) {
    for (const target of ['slab', 'other']) {
      const runs = results.filter((r) => r.scenario === scenario && r.target === target);
      const ceiling = results.filter((r) => r.scenario === scenario && r.target === 'ceiling');
      /** each run's req/s over `against`'s run of the same round */
      const over = (against: string): number[] =>
        runs.flatMap((a) => {
          const b = results.find((r) => r.scenario === scenario && r.target === against && r.round === a.round);
          return b !== undefined && b.reqPerSec > 0 ? [a.reqPerSec / b.reqPerSec] : [];
        });
      const ratios = over('ceiling');
      if (ratios.length === 0) continue;
      const overSlab = target === 'other' ? over('slab') : [];
      out.push({
        scenario,
        target,
        overSlab: overSlab.length > 0 ? { ratio: median(overSlab), ratios: overSlab } : undefined,
        slabReqPerSec: median(runs.map((r) => r.reqPerSec)),
        ceilingReqPerSec: median(ceiling.map((r) => r.reqPerSec)),
        ratio: median(ratios),
        ratios,
        slabMainUs: median(runs.map((r) => cpuUsPerReq(r, true))),
        ceilingMainUs: median(ceiling.map((r) => cpuUsPerReq(r, true))),
        maxStealPct: Math.max(...runs.map((r) => r.stealPct), ...ceiling.map((r) => r.stealPct)),
      });
    }
  }
  return out;
}

// ---- main ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const m0 = machine();
  console.log(describeMachine(m0));
  console.log(
    `${client}: ${connections} connections, pipelining ${pipelining}, ${duration} s per run after a ${warmup} s warm-up; ` +
      `targets ${targetNames.join(',')}; scenarios ${scenarioNames.join(',')}; shards ${shards}; batch ${batchOps} ops` +
      (rounds > 1 ? `; ${rounds} rounds, targets in turn` : '') +
      (cpuProf ? '; service under --cpu-prof' : '') +
      '\n',
  );
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  // Raw profiles are large: they go to the temp directory; the summary goes into the results JSON.
  const profDir = cpuProf ? join(tmpdir(), `read-states-prof-${stamp}`) : undefined;
  if (profDir !== undefined) mkdirSync(profDir, { recursive: true });

  const targets: Target[] = [];
  let port = basePort;
  for (const name of targetNames) {
    if (name === 'slab') targets.push(await startSlab(port++, profDir));
    else if (name === 'other') {
      if (otherBuild === '') throw new Error('target other needs --other-build DIR');
      targets.push(await startSlab(port++, profDir, 'other', resolve(otherBuild)));
    }
    else if (name === 'ceiling') targets.push(await startCeiling(port++));
    else throw new Error(`unknown target ${name}`);
  }
  const serviceInfo: Record<string, unknown> = {};
  const results: RunResult[] = [];
  try {
    for (const t of targets) {
      console.log(`${t.name}: ${t.url} pid ${t.proc.pid} (${t.args.join(' ')})`);
      if (t.name !== 'ceiling') {
        const t0 = Date.now();
        const n = await prefill(t);
        console.log(`  pre-filled ${fmt(n)} read states (${fmt(prefillUsers)} users x ${prefillChannels}) in ${fmt((Date.now() - t0) / 1000, 1)} s`);
        if (scenarioNames.includes('connect-delta')) {
          for (let k = 0; k < prefillUsers; k++) {
            const r = await fetch(`${t.url}/v1/users/${userIds[k]}/read-states`);
            userVersions[k] = ((await r.json()) as { version: number }).version;
          }
        }
        serviceInfo.statsAfterPrefill = await stats(t);
      }
    }
    for (const sn of scenarioNames) {
      const s = SCENARIOS[sn];
      if (s === undefined) throw new Error(`unknown scenario ${sn}`);
      for (let round = 1; round <= rounds; round++) {
        for (const t of round % 2 === 1 ? targets : [...targets].reverse()) {
          await smoke(t, s);
          const quiet = quietTimeout > 0 ? await waitForQuiet(quietMax, quietTimeout) : undefined;
          const run = client === 'wrk' ? driveWrk : drive;
          if (warmup > 0) await run(t, s, warmup);
          const r = await run(t, s, duration);
          r.quietBefore = quiet;
          r.round = round;
          results.push(r);
          console.log(
            `  ${s.name.padEnd(8)} ${t.name.padEnd(8)} ${fmt(r.reqPerSec).padStart(8)} req/s` +
              (s.opsPerRequest > 1 ? ` (${fmt(r.opsPerSec)} ops/s)` : '') +
              `  p50 ${fmt(r.latencyUs.p50 / 1000, 2)} ms  p99 ${fmt(r.latencyUs.p99 / 1000, 2)} ms  p99.9 ${fmt(r.latencyUs.p999 / 1000, 2)} ms  max ${fmt(r.latencyUs.max / 1000, 1)} ms` +
              `  non-2xx ${r.non2xx} errors ${r.errors}  steal ${r.stealPct}%  server CPU ${r.serverCpuPct}% [${r.serverThreads.slice(0, 3).map((x) => `${x.main ? 'main' : x.comm + '/' + x.tid} ${x.pct}%`).join(', ')}]  driver CPU ${r.driverCpuPct}%  others ${r.othersCpuPct}%  load ${r.loadavgEnd[0]}` +
              (quiet !== undefined ? `  (before: ${quiet.busyPct}% busy after waiting ${quiet.waitedS} s)` : ''),
          );
        }
      }
    }
    const slab = targets.find((t) => t.name === 'slab');
    if (slab !== undefined) serviceInfo.statsAfterRuns = await stats(slab);
  } finally {
    for (const t of targets) {
      const code = await stop(t);
      if (code !== 0) console.log(`${t.name} exited with ${code}`);
    }
  }

  let profiles: ProfileSummary[] = [];
  if (profDir !== undefined) {
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
    const last = results.filter((r) => r.target === 'slab').at(-1);
    profiles = files.map((f) => summarize(join(profDir, f), last?.windowUs[0] ?? 0, last?.windowUs[1] ?? Number.POSITIVE_INFINITY, 30));
    console.log(`\nCPU profiles (${profDir}), samples inside the measured ${last?.scenario ?? ''} run:`);
    for (const p of profiles.filter((x) => x.sampledMs > 0)) console.log('\n' + formatSummary(p, 25));
  }

  const m1 = machine();
  const rows = results.map((r) => {
    const ceiling = results.find((c) => c.scenario === r.scenario && c.round === r.round && c.target === 'ceiling');
    return [
      r.scenario,
      r.target,
      fmt(r.reqPerSec),
      r.opsPerSec !== r.reqPerSec ? fmt(r.opsPerSec) : '-',
      r.target !== 'ceiling' && ceiling !== undefined ? `${fmt((100 * r.reqPerSec) / ceiling.reqPerSec)}%` : '-',
      fmt(r.latencyUs.p50 / 1000, 2),
      fmt(r.latencyUs.p99 / 1000, 2),
      fmt(r.latencyUs.p999 / 1000, 2),
      fmt(r.latencyUs.max / 1000, 1),
      String(r.non2xx + r.errors + r.timeouts),
      `${r.serverCpuPct}%`,
      fmt(cpuUsPerReq(r, true), 0),
      fmt(cpuUsPerReq(r, false), 0),
      `${r.driverCpuPct}%`,
      `${r.othersCpuPct}%`,
    ];
  });
  console.log(
    '\n' +
      table(['scenario', 'target', 'req/s', 'read-state ops/s', 'vs ceiling', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'server CPU', 'main-thread CPU µs/req', 'server CPU µs/req', 'driver CPU', 'other procs CPU'], rows),
  );
  const summary = rounds > 1 ? roundsSummary(results) : [];
  if (summary.length > 0) {
    console.log(
      `\nOver ${rounds} rounds (targets in turn; medians):\n` +
        table(
          ['scenario', 'target', 'target req/s', 'ceiling req/s', 'ratio (median of rounds)', 'ratios by round', 'other / slab (rounds)', 'target main-thread µs/req', 'ceiling main-thread µs/req', 'steal, worst run'],
          summary.map((x) => [
            x.scenario,
            x.target,
            fmt(x.slabReqPerSec),
            fmt(x.ceilingReqPerSec),
            x.ratio.toFixed(2),
            x.ratios.map((v) => v.toFixed(2)).join(' '),
            x.overSlab !== undefined ? `${x.overSlab.ratio.toFixed(2)} (${x.overSlab.ratios.map((v) => v.toFixed(2)).join(' ')})` : '-',
            fmt(x.slabMainUs, 0),
            fmt(x.ceilingMainUs, 0),
            `${x.maxStealPct}%`,
          ]),
        ),
    );
  }
  const file = writeResults(cpuProf ? 'http-cpuprof' : 'http', {
    bench: 'http',
    argv: process.argv.slice(2),
    options: { client, duration, warmup, connections, pipelining, batchOps, prefillUsers, prefillChannels, shards, cpuProf, rounds },
    machineBefore: m0,
    machineAfter: m1,
    targets: targets.map((t) => ({ name: t.name, args: t.args })),
    service: serviceInfo,
    results,
    summary,
    profiles: profiles.map((p) => ({ ...p, top: p.top.slice(0, 30) })),
  });
  console.log(`\nload after: ${m1.uptime}\nresults: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
