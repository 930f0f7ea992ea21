/**
 * Load from wrk (C, epoll; closed loop, one thread), for the benches that drive a server with it
 * (http.ts --client wrk, cluster.ts): a Lua script of requests built up front and sent in turn,
 * whose done() prints wrk's figures as one JSON line, and the runner that starts wrk on such a
 * script and reads wrk's own CPU time from /proc while it runs.
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sumThreadTicks } from './common.js';

/** One prepared request; a body goes out as JSON. */
export interface WrkRequest {
  method: string;
  path: string;
  body?: string;
}

/** What the script's done() prints: latencies in µs, errors the socket ones (connect, read, write). */
export interface WrkFigures {
  requests: number;
  durationUs: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface WrkResult extends WrkFigures {
  /** wrk's own utime + stime, sampled every 200 ms while it runs (up to 200 ms of it may be missed) */
  cpuTicks: number;
}

/** A Lua long-bracket string: no escaping needed for JSON bodies and paths. */
function luaString(s: string): string {
  return `[==[${s}]==]`;
}

/** A wrk script that sends `count` requests made by `build` in turn, and prints its figures (WrkFigures) as JSON. */
export function wrkScript(url: string, count: number, build: () => WrkRequest): string {
  // Headers given to wrk.format replace wrk's defaults, Host included.
  const host = `["Host"] = ${luaString(new URL(url).host)}`;
  const lines = ['local r = {}'];
  for (let i = 0; i < count; i++) {
    const b = build();
    const headers = b.body !== undefined ? `{${host}, ["content-type"] = "application/json"}` : `{${host}}`;
    lines.push(`r[${i + 1}] = wrk.format(${luaString(b.method)}, ${luaString(b.path)}, ${headers}${b.body !== undefined ? ', ' + luaString(b.body) : ''})`);
  }
  lines.push('local i = 0', 'request = function() i = i + 1; if i > #r then i = 1 end; return r[i] end');
  return lines.join('\n') + '\n' + DONE_LUA;
}

/**
 * A wrk script whose requests Lua computes: `GET pathPrefix .. (first + n) .. pathSuffix` for
 * n = 0, 1, 2, ... (a table of prepared requests runs into Lua's limit on constants at ~100,000).
 */
export function wrkCountingScript(pathPrefix: string, first: number, pathSuffix: string): string {
  const lines = [
    `local n = ${first - 1}`,
    `request = function() n = n + 1; return wrk.format("GET", ${luaString(pathPrefix)} .. string.format("%d", n) .. ${luaString(pathSuffix)}) end`,
  ];
  return lines.join('\n') + '\n' + DONE_LUA;
}

const DONE_LUA =
  [
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format(\'WRK_JSON {"requests":%d,"durationUs":%d,"non2xx":%d,"errors":%d,"timeouts":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%d}\\n\',',
    '    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,',
    '    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))',
    'end',
  ].join('\n') + '\n';

export interface WrkRun {
  url: string;
  connections: number;
  seconds: number;
  /** a script from wrkScript */
  script: string;
  /** called with the script written, right before wrk starts: where a caller takes its "before" readings */
  onStart?: () => void;
}

/** Runs wrk (one thread) on a script from wrkScript; throws if wrk fails or prints no figures. */
export async function runWrk(r: WrkRun): Promise<WrkResult> {
  const file = join(tmpdir(), `read-states-wrk-${process.pid}-${Math.random().toString(16).slice(2)}.lua`);
  writeFileSync(file, r.script);
  r.onStart?.();
  const wrk = spawn('wrk', ['-t', '1', '-c', String(r.connections), '-d', `${r.seconds}s`, '--timeout', '30s', '-s', file, r.url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  wrk.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // sampled while wrk runs: its /proc entry is gone once it has exited
  let cpuTicks = 0;
  const sampler = setInterval(() => (cpuTicks = Math.max(cpuTicks, sumThreadTicks(wrk.pid))), 200);
  const code = await new Promise<number | null>((resolve) => wrk.on('exit', (c) => resolve(c)));
  clearInterval(sampler);
  rmSync(file, { force: true });
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (code !== 0 || line === undefined) throw new Error(`wrk exited with ${code}:\n${out}`);
  return { ...(JSON.parse(line.slice('WRK_JSON '.length)) as WrkFigures), cpuTicks };
}
