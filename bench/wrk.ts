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
  /** a file script's latency (µs) at each of WRK_QUANTILES; null from the other scripts */
  quantiles: number[] | null;
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

/**
 * A wrk script that reads its requests from the file named by its first argument (after `--`):
 * one request a line, `METHOD<TAB>PATH<TAB>BODY` (an empty body: none), formatted once at start
 * and sent in turn, from the top again after the last. For more requests than a script's
 * constants can hold (wrkScript), e.g. a minute of a generated mix.
 */
export function wrkFileScript(url: string): string {
  const host = luaString(new URL(url).host);
  const lines = [
    'local r = {}',
    'init = function(args)',
    '  for line in io.lines(args[1]) do',
    '    local m, p, b = line:match("^(%u+)\t([^\t]*)\t(.*)$")',
    `    if b == "" then r[#r + 1] = wrk.format(m, p, {["Host"] = ${host}})`,
    `    else r[#r + 1] = wrk.format(m, p, {["Host"] = ${host}, ["content-type"] = "application/json"}, b) end`,
    '  end',
    // wrk starts its clock after init: the runner's window starts here (WrkRun.onStart)
    '  io.write("WRK_READY\\n"); io.flush()',
    'end',
    'local i = 0',
    'request = function() i = i + 1; if i > #r then i = 1 end; return r[i] end',
  ];
  return lines.join('\n') + '\n' + DONE_LUA.replace(/end\n$/, QUANTILES_LUA + 'end\n');
}

/** Percentiles at which a file script's done() also prints the latency (WrkResult.quantiles). */
export const WRK_QUANTILES = [
  ...Array.from({ length: 99 }, (_, i) => i + 1),
  ...Array.from({ length: 9 }, (_, i) => (991 + i) / 10),
  ...Array.from({ length: 9 }, (_, i) => (9991 + i) / 100),
  99.995,
  99.999,
];
const QUANTILES_LUA =
  [
    `  local qs = {${WRK_QUANTILES.join(', ')}}`,
    '  local out = {}',
    '  for k, q in ipairs(qs) do out[k] = string.format("%d", latency:percentile(q)) end',
    '  io.write("WRK_QUANTILES [" .. table.concat(out, ",") .. "]\\n")',
  ].join('\n') + '\n';

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
  /**
   * called right before wrk starts, or once a script that prints WRK_READY (wrkFileScript) has
   * read its requests: where a caller takes its "before" readings; wrk's CPU counts from then
   */
  onStart?: () => void;
  /** the script's arguments (its init(args)) */
  args?: string[];
}

/** Runs wrk (one thread) on a script from wrkScript; throws if wrk fails or prints no figures. */
export async function runWrk(r: WrkRun): Promise<WrkResult> {
  const file = join(tmpdir(), `read-states-wrk-${process.pid}-${Math.random().toString(16).slice(2)}.lua`);
  writeFileSync(file, r.script);
  const waitsForReady = r.script.includes('WRK_READY');
  if (!waitsForReady) r.onStart?.();
  const wrk = spawn('wrk', ['-t', '1', '-c', String(r.connections), '-d', `${r.seconds}s`, '--timeout', '30s', '-s', file, r.url, ...(r.args !== undefined ? ['--', ...r.args] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  // sampled while wrk runs: its /proc entry is gone once it has exited
  let cpuTicks = 0;
  let ticksAtStart = 0;
  let ready = !waitsForReady;
  wrk.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (!ready && out.includes('WRK_READY\n')) {
      ready = true;
      ticksAtStart = sumThreadTicks(wrk.pid);
      r.onStart?.();
    }
  });
  const sampler = setInterval(() => (cpuTicks = Math.max(cpuTicks, sumThreadTicks(wrk.pid))), 200);
  const code = await new Promise<number | null>((resolve) => wrk.on('exit', (c) => resolve(c)));
  clearInterval(sampler);
  rmSync(file, { force: true });
  const line = out.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (code !== 0 || line === undefined) throw new Error(`wrk exited with ${code}:\n${out}`);
  const q = out.split('\n').find((l) => l.startsWith('WRK_QUANTILES '));
  const quantiles = q === undefined ? null : (JSON.parse(q.slice('WRK_QUANTILES '.length)) as number[]);
  return { ...(JSON.parse(line.slice('WRK_JSON '.length)) as WrkFigures), cpuTicks: Math.max(0, cpuTicks - ticksAtStart), quantiles };
}
