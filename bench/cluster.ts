/**
 * Cluster mode against one instance, over the same Cassandra, measured with wrk (closed loop):
 *
 *   node dist/bench/cluster.js [--users 20000] [--duration 15] [--warmup 3] [--connections 32]
 *        [--partitions 1024] [--scenarios get,mention] [--layouts single,cluster-1-slow-flush,cluster-1,cluster-3]
 *
 * Needs a Cassandra answering on 127.0.0.1:9042 (npm run cassandra:start). Each layout gets a fresh
 * keyspace, is filled through /v1/batch (users of 10 channels), then waits until Cassandra has
 * every change (the write-behind settled) before anything is measured:
 * - single: one instance, no --cluster (today's default mode, on Cassandra);
 * - cluster-1 --flush-delay 30000: one instance with --cluster (leases, fencing, owner checks;
 *   nothing forwarded) and the single instance's flush delay: what ownership costs;
 * - cluster-1: the same with cluster mode's default flush delay (1 s, the SIGKILL loss bound), so
 *   Cassandra takes a write for nearly every change;
 * - cluster-3: three instances with --cluster; one wrk per instance with a third of the
 *   connections, each request for a random user, so about two thirds are forwarded once;
 * - routed: in cluster-3, every request sent straight to its owner (what a client that routes by
 *   GET /v1/cluster does, e.g. the bundled client with `cluster: true`);
 * - hop: in cluster-3, one wrk against instance A with only users A owns (direct) and then only
 *   users another instance owns (every request forwarded): the extra hop's cost.
 * Every instance runs --shards 1. On one 2-core machine the three instances share the cores (and
 * Cassandra): the figures say what the ownership and forwarding cost, not how a cluster of
 * machines scales. wrk's and the servers' CPU come from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cassandra from 'cassandra-driver';
import { partitionOf } from '../workers/hash.js';
import { CLK_TCK, REPO_ROOT, Rng, describeMachine, fmt, intFlag, machine, parseFlags, strFlag, sumThreadTicks, table, waitForQuiet, writeResults } from './common.js';
import { CHANNELS_PER_USER, fillBody, userId } from './fill-users.js';
import { runWrk, wrkScript } from './wrk.js';
import { serviceEnv } from './service-env.js';

const flags = parseFlags(process.argv.slice(2));
const users = intFlag(flags, 'users', 20_000);
const duration = intFlag(flags, 'duration', 15);
const warmup = intFlag(flags, 'warmup', 3);
const connections = intFlag(flags, 'connections', 32);
const partitions = intFlag(flags, 'partitions', 1024);
const scenarios = strFlag(flags, 'scenarios', 'get,mention').split(',');
const layouts = new Set(strFlag(flags, 'layouts', 'single,cluster-1-slow-flush,cluster-1,cluster-3').split(','));
const basePort = intFlag(flags, 'port', 21_000 + Math.floor(Math.random() * 10_000));

interface Instance {
  url: string;
  proc: ChildProcess;
  dir: string;
}

interface Run {
  layout: string;
  scenario: string;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  non2xx: number;
  serverCpuPct: number;
  wrkCpuPct: number;
  /** how busy the machine was before the run (other processes: Cassandra) */
  quietBefore: { busyPct: number; waitedS: number; quiet: boolean };
}

function channelOfUser(k: number, c: number): string {
  return String(2_000_000 + c * 7919 + (k % 1000));
}

async function start(port: number, keyspace: string, cluster: boolean, extra: string[]): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), 'rs-cluster-bench-'));
  const args = ['dist/src/main.js', '--port', String(port), '--shards', '1', '--log-level', 'warn', '--store', 'cassandra', '--cassandra-keyspace', keyspace, '--data-dir', dir];
  if (cluster) args.push('--cluster', 'bench', '--partitions', String(partitions));
  args.push(...extra);
  const proc = spawn(process.execPath, args, { cwd: REPO_ROOT, env: serviceEnv(), stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if ((await fetch(url + '/ready')).status === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) throw new Error(`instance on ${port} not ready`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, proc, dir };
}

async function stop(i: Instance): Promise<void> {
  const exited = new Promise((r) => i.proc.once('exit', r));
  i.proc.kill('SIGTERM');
  await exited;
  rmSync(i.dir, { recursive: true, force: true });
}

async function fill(url: string): Promise<void> {
  const per = 500;
  for (let k = 0; k < users; k += per) {
    const res = await fetch(url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: fillBody(k, Math.min(per, users - k)) });
    const text = await res.text();
    if (res.status !== 200 || text.includes('"status":5')) throw new Error(`fill refused (${res.status}): ${text.slice(0, 300)}`);
  }
}

/** Waits until Cassandra holds one row per filled read state (the write-behind has settled). */
async function settled(keyspace: string): Promise<void> {
  const client = new cassandra.Client({ contactPoints: ['127.0.0.1'], localDataCenter: 'datacenter1' });
  await client.connect();
  try {
    const deadline = Date.now() + 120_000;
    for (;;) {
      const rs = await client.execute(`SELECT COUNT(*) AS n FROM ${keyspace}.read_states`, [], { readTimeout: 60_000 });
      if ((rs.first()['n'] as cassandra.types.Long).toNumber() >= users * CHANNELS_PER_USER) return;
      if (Date.now() > deadline) throw new Error('the write-behind did not settle');
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await client.shutdown();
  }
}

/** A wrk script with prepared requests for users picked by `pick`. */
function script(url: string, scenario: string, pick: (rng: Rng) => number): string {
  const rng = new Rng(7);
  return wrkScript(url, 20_000, () => {
    const k = pick(rng);
    const u = userId(k);
    const c = channelOfUser(k, rng.below(CHANNELS_PER_USER));
    if (scenario === 'get') return { method: 'GET', path: `/v1/users/${u}/read-states/${c}` };
    return { method: 'POST', path: `/v1/users/${u}/read-states/${c}/mentions`, body: '{}' };
  });
}

/** Runs one wrk per (url, picker) at once, warm-up first; sums throughput, takes the worst percentiles. */
async function measure(layout: string, scenario: string, targets: { url: string; pick: (rng: Rng) => number }[], procs: ChildProcess[]): Promise<Run> {
  const conns = Math.max(1, Math.floor(connections / targets.length));
  // Cassandra compacts after a fill: wait for the CPUs to calm down (it goes ahead after 120 s).
  const quiet = await waitForQuiet(40, 120);
  await Promise.all(targets.map((t) => runWrk({ url: t.url, connections: conns, seconds: warmup, script: script(t.url, scenario, t.pick) })));
  const t0 = procs.map((p) => sumThreadTicks(p.pid));
  const w0 = Date.now();
  const outs = await Promise.all(targets.map((t) => runWrk({ url: t.url, connections: conns, seconds: duration, script: script(t.url, scenario, t.pick) })));
  const wallS = (Date.now() - w0) / 1000;
  const serverTicks = procs.reduce((a, p, i) => a + sumThreadTicks(p.pid) - t0[i], 0);
  const run: Run = {
    layout,
    scenario,
    reqPerSec: outs.reduce((a, o) => a + o.requests / (o.durationUs / 1e6), 0),
    p50Ms: Math.max(...outs.map((o) => o.p50)) / 1000,
    p99Ms: Math.max(...outs.map((o) => o.p99)) / 1000,
    p999Ms: Math.max(...outs.map((o) => o.p999)) / 1000,
    non2xx: outs.reduce((a, o) => a + o.non2xx, 0),
    serverCpuPct: Math.round((100 * serverTicks) / CLK_TCK / wallS),
    wrkCpuPct: Math.round((100 * outs.reduce((a, o) => a + o.cpuTicks, 0)) / CLK_TCK / wallS),
    quietBefore: quiet,
  };
  console.log(`${layout} ${scenario}: ${fmt(run.reqPerSec)} req/s, p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms, non-2xx ${run.non2xx}, servers ${run.serverCpuPct}% CPU, wrk ${run.wrkCpuPct}%`);
  return run;
}

const anyUser = (rng: Rng): number => rng.below(users);

async function layout(name: string, count: number, cluster: boolean, runs: Run[], extra: string[] = []): Promise<void> {
  const keyspace = `rs_bench_${name.replace(/[^a-z0-9]+/g, '_')}_${Date.now() % 1_000_000}`;
  const instances: Instance[] = [];
  try {
    for (let i = 0; i < count; i++) instances.push(await start(basePort + runs.length * 10 + i, keyspace, cluster, extra));
    if (count > 1) {
      // every instance has its share before the fill
      const deadline = Date.now() + 60_000;
      for (;;) {
        const d = (await (await fetch(instances[0].url + '/v1/cluster')).json()) as { owners: { owner: string | null }[] };
        if (new Set(d.owners.map((o) => o.owner)).size === count && d.owners.every((o) => o.owner !== null)) break;
        if (Date.now() > deadline) throw new Error('partitions did not settle');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    await fill(instances[0].url);
    await settled(keyspace);
    const procs = instances.map((i) => i.proc);
    for (const s of scenarios) runs.push(await measure(name, s, instances.map((i) => ({ url: i.url, pick: anyUser })), procs));
    if (count > 1) {
      const d = (await (await fetch(instances[0].url + '/v1/cluster')).json()) as { instance_id: string; owners: { owner: string | null; url: string | null }[] };
      const ownerUrl = (k: number): string | null => {
        const id = BigInt(userId(k));
        return d.owners[partitionOf(Number(id & 0xffffffffn), Number(id >> 32n), partitions)].url;
      };
      const byOwner = new Map<string, number[]>(instances.map((i) => [i.url, []]));
      for (let k = 0; k < users; k++) byOwner.get(ownerUrl(k) ?? '')?.push(k);
      // what a client routing by GET /v1/cluster gets: every request straight to its owner
      for (const s of scenarios) {
        runs.push(await measure(`${name} routed (each request to its owner)`, s, instances.map((i) => ({ url: i.url, pick: (rng: Rng) => byOwner.get(i.url)![rng.below(byOwner.get(i.url)!.length)] })), procs));
      }
      const own = byOwner.get(instances[0].url)!;
      const other: number[] = [];
      for (let k = 0; k < users; k++) if (ownerUrl(k) !== instances[0].url) other.push(k);
      for (const s of scenarios) {
        runs.push(await measure(`${name} direct (A's users at A)`, s, [{ url: instances[0].url, pick: (rng) => own[rng.below(own.length)] }], procs));
        runs.push(await measure(`${name} forwarded (others' users at A)`, s, [{ url: instances[0].url, pick: (rng) => other[rng.below(other.length)] }], procs));
      }
    }
  } finally {
    for (const i of instances) await stop(i).catch(() => {});
  }
}

async function main(): Promise<void> {
  const m = machine();
  console.log(describeMachine(m));
  const runs: Run[] = [];
  if (layouts.has('single')) await layout('single', 1, false, runs);
  // the ownership checks alone: the single instance's flush delay
  if (layouts.has('cluster-1-slow-flush')) await layout('cluster-1 --flush-delay 30000', 1, true, runs, ['--flush-delay', '30000']);
  // cluster mode as it starts by default (1 s flush delay: the SIGKILL loss bound)
  if (layouts.has('cluster-1')) await layout('cluster-1', 1, true, runs);
  if (layouts.has('cluster-3')) await layout('cluster-3', 3, true, runs);
  console.log(
    table(
      ['layout', 'scenario', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'non-2xx', 'servers CPU %', 'wrk CPU %'],
      runs.map((r) => [r.layout, r.scenario, fmt(r.reqPerSec), r.p50Ms, r.p99Ms, r.p999Ms, r.non2xx, r.serverCpuPct, r.wrkCpuPct]),
    ),
  );
  const file = writeResults('cluster', { machine: m, flags: Object.fromEntries(flags), users, duration, warmup, connections, partitions, runs });
  console.log(`results: ${file}`);
}

await main();
