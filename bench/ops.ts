/**
 * Operations benchmarks:
 * 1. the cost of metrics: closed-loop throughput and latency of the mention route with /metrics
 *    scraped every second vs not scraped, alternating runs to spread the machine's noise;
 * 2. overload: offered load at 150% of the measured closed-loop maximum; accepted requests'
 *    latency and how many were refused with 503.
 *
 *   npm run bench:ops -- --duration 15 --rounds 2
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { REPO_ROOT, describeMachine, fmt, intFlag, machine, parseFlags, table, writeResults } from './common.js';
import { serviceEnv } from './service-env.js';

interface Run {
  label: string;
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  ok: number;
  non2xx: number;
}

async function waitReady(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
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

async function load(url: string, label: string, seconds: number, connections: number, rate?: number): Promise<Run> {
  let i = 0;
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    ...(rate !== undefined ? { overallRate: rate } : {}),
    requests: [
      {
        method: 'POST',
        setupRequest: (req) => {
          i++;
          return { ...req, path: `/v1/users/${1 + (i % 20000)}/read-states/${1 + (i % 7)}/mentions`, headers: { 'content-type': 'application/json' }, body: '{}' };
        },
      },
    ],
  } as Parameters<typeof autocannon>[0]);
  return {
    label,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    max: result.latency.max,
    ok: result['2xx'],
    non2xx: result.non2xx,
  };
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const seconds = intFlag(flags, 'duration', 15);
  const rounds = intFlag(flags, 'rounds', 2);
  const port = intFlag(flags, 'port', 3650);
  const m = machine();
  console.log(describeMachine(m));
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(
    process.execPath,
    [join(REPO_ROOT, 'dist/src/main.js'), '--port', String(port), '--shards', '1', '--store', 'memory', '--capacity', '1000000', '--max-queue', '2000', '--log-level', 'warn'],
    { env: serviceEnv(), stdio: 'inherit' },
  );
  const runs: Run[] = [];
  try {
    await waitReady(url);
    await load(url, 'warm-up', 5, 50);
    for (let r = 0; r < rounds; r++) {
      runs.push(await load(url, 'no scrape', seconds, 50));
      let scrapes = 0;
      const timer = setInterval(() => {
        fetch(url + '/metrics').then((res) => res.text()).then(() => scrapes++, () => {});
      }, 1000);
      const run = await load(url, 'scrape every 1 s', seconds, 50);
      clearInterval(timer);
      run.label += ` (${scrapes} scrapes)`;
      runs.push(run);
    }
    const max = Math.max(...runs.map((x) => x.rps));
    // 32 connections: enough to offer 150% (a closed loop of 50 saturates the server), few enough
    // that autocannon's per-connection rate timers do not turn the rate into bursts.
    const overload = await load(url, `open loop at 150% of ${fmt(max)} req/s`, seconds, 32, Math.round(max * 1.5));
    runs.push(overload);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
  console.log(
    table(
      ['run', 'req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', '2xx', 'non-2xx'],
      runs.map((x) => [x.label, fmt(x.rps), x.p50, x.p99, x.p999, x.max, x.ok, x.non2xx]),
    ),
  );
  const file = writeResults('ops', { machine: m, command: `npm run bench:ops -- ${process.argv.slice(2).join(' ')}`, runs });
  console.log(`results: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
