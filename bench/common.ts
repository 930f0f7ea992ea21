/**
 * Shared helpers for the benchmarks: flag parsing, machine/load description, deterministic ids,
 * CPU time from /proc, and writing JSON results to bench/results/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatId } from '../src/ids.js';

/** Repository root (this file runs from dist/bench/). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');

/** `--name value` and `--flag` style arguments. */
export function parseFlags(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) {
      out.set(a.slice(2, eq), a.slice(eq + 1));
    } else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) {
      out.set(a.slice(2), argv[++i]);
    } else {
      out.set(a.slice(2), 'true');
    }
  }
  return out;
}

export function intFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${v}`);
  return Math.floor(n);
}

export function strFlag(flags: Map<string, string>, name: string, fallback: string): string {
  return flags.get(name) ?? fallback;
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

export interface Machine {
  cores: number;
  nproc: string;
  cpuModel: string;
  node: string;
  totalMemMiB: number;
  /** `uptime` output and the 1/5/15-minute load averages when sampled */
  uptime: string;
  loadavg: number[];
  /** busiest other processes at the time (ps), to show what the benchmark shared the CPUs with */
  topProcesses: string[];
  git: { head: string; dirty: string[]; diffSha: string };
}

export function machine(): Machine {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1];
  } catch {
    /* not Linux */
  }
  const ps = sh('ps', ['-eo', 'pid,pcpu,rss,comm', '--sort=-pcpu']).split('\n').slice(0, 6);
  const dirty = sh('git', ['status', '--porcelain', '--', 'src', 'workers']).split('\n').filter(Boolean);
  const diff = sh('bash', ['-c', 'git diff HEAD -- src workers | sha256sum | cut -c1-16']);
  return {
    cores: availableParallelism(),
    nproc: sh('nproc', []),
    cpuModel,
    node: process.version,
    totalMemMiB: Math.round(totalmem() / 1048576),
    uptime: sh('uptime', []),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    topProcesses: ps,
    git: { head: sh('git', ['rev-parse', '--short', 'HEAD']), dirty, diffSha: diff },
  };
}

export function describeMachine(m: Machine): string {
  return [
    `machine: ${m.cores} cores (nproc ${m.nproc}), ${m.cpuModel}, node ${m.node}, ${m.totalMemMiB} MiB RAM`,
    `load:    ${m.uptime}`,
    `code:    HEAD ${m.git.head}` +
      (m.git.dirty.length > 0 ? `, uncommitted src/workers changes (diff sha ${m.git.diffSha}): ${m.git.dirty.join(' | ')}` : ', clean src/workers'),
  ].join('\n');
}

export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const ts = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(RESULTS_DIR, `${name}-${ts}.json`);
  writeFileSync(file, machineNeutral(JSON.stringify(data, null, 2)) + '\n');
  return file;
}

/**
 * A result file names no directory of the machine that wrote it: paths in the repository become
 * relative, temporary ones (data dirs, profiles) start with $TMPDIR.
 */
export function machineNeutral(text: string): string {
  const tmp = tmpdir().replace(/\/?$/, '/').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // only where a path starts (bench/results/tmp/ is the repository's, not the machine's)
  return text.replaceAll(REPO_ROOT, '').replace(new RegExp(`(^|[\\s"'=])${tmp}`, 'g'), '$1$$TMPDIR/');
}

// ---- deterministic ids -----------------------------------------------------------------------

/** murmur3 fmix32: a cheap bijection on uint32, so ids look random but never collide. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * User k as a snowflake-sized 64-bit id (about 2^56..2^57: 17-18 decimal digits): the high half
 * is a "timestamp" that grows with k, the low half a scrambled counter. Distinct for distinct k.
 */
export function userLo(k: number): number {
  return mix32(k + 1);
}
export function userHi(k: number): number {
  return 0x01180000 + (k >>> 12);
}

/** Channel c (of a pool of channels) as a 64-bit id. */
export function chanLo(c: number): number {
  return mix32(c ^ 0x5a5a5a5a);
}
export function chanHi(c: number): number {
  return 0x00940000 + (c >>> 12);
}

/** j-th channel (0 <= j < 1,000,000) of user k: distinct for distinct j (104729 is prime). */
export function channelOf(k: number, j: number, pool = 1_000_000): number {
  return (k * 7919 + j * 104729) % pool;
}

/** Decimal string of hi * 2^32 + lo: the service's own formatting (request ids for the load generator). */
export const idString = formatId;

/** xorshift32: a fast deterministic PRNG for picking keys. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x;
  }
  /** integer in [0, n) */
  below(n: number): number {
    return this.next() % n;
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 === 1 ? s[(n - 1) >> 1] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

export function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
  return [line(cells[0]), '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

// ---- CPU accounting (Linux /proc; 0 elsewhere) -----------------------------------------------

export const CLK_TCK = 100;

/** utime + stime of the calling thread, in clock ticks. */
export function threadCpuTicks(): number {
  try {
    const s = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** CPU ticks (utime + stime) of each live thread of a process, by thread id; empty once it is gone. */
export function threadTicks(pid: number): Map<number, { comm: string; ticks: number }> {
  const out = new Map<number, { comm: string; ticks: number }>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      // comm may itself hold ") ": the fields start after the last one
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' ');
      out.set(Number(tid), { comm, ticks: Number(f[11]) + Number(f[12]) });
    }
  } catch {
    /* process gone or not Linux */
  }
  return out;
}

/** One thread's CPU over a window. */
export interface ThreadCpu {
  tid: number;
  comm: string;
  main: boolean;
  /** % of one core during the run */
  pct: number;
}

/** Each thread's CPU since `before` (threadTicks), as % of one core over `seconds`; threads under 1% left out, busiest first. */
export function cpuDelta(pid: number, before: Map<number, { comm: string; ticks: number }>, seconds: number): ThreadCpu[] {
  const after = threadTicks(pid);
  const out: ThreadCpu[] = [];
  for (const [tid, a] of after) {
    const b = before.get(tid)?.ticks ?? 0;
    const pct = (100 * (a.ticks - b)) / CLK_TCK / seconds;
    if (pct >= 1) out.push({ tid, comm: a.comm, main: tid === pid, pct: Math.round(pct * 10) / 10 });
  }
  return out.sort((x, y) => y.pct - x.pct);
}

/** utime + stime of a process's live threads together, in clock ticks; 0 once it is gone. */
export function sumThreadTicks(pid: number | undefined): number {
  let sum = 0;
  for (const x of threadTicks(pid ?? -1).values()) sum += x.ticks;
  return sum;
}

/** Busy (non-idle, non-iowait) clock ticks of all CPUs together, from /proc/stat. */
export function systemBusyTicks(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return total - f[3] - f[4];
  } catch {
    return 0;
  }
}

/** Ticks the hypervisor took from this VM's CPUs since boot (/proc/stat steal; 0 where unknown). */
export function systemStealTicks(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    return Number(f[8] ?? 0);
  } catch {
    return 0;
  }
}

/** Steal since `ticks0` (systemStealTicks()) over `seconds` of wall time, % of one core, one decimal. */
export function stealPctSince(ticks0: number, seconds: number): number {
  return Math.round(((100 * (systemStealTicks() - ticks0)) / CLK_TCK / seconds) * 10) / 10;
}

/**
 * Waits (up to timeoutS) until the machine's CPUs are mostly idle: busy time over a 3 s sample
 * below maxBusyPct (% of one core; 2 cores = 200%). Call it while the benchmark's own processes
 * are idle. Returns what the last sample saw and how long it waited.
 */
export async function waitForQuiet(maxBusyPct: number, timeoutS: number): Promise<{ busyPct: number; waitedS: number; quiet: boolean }> {
  const start = Date.now();
  let busyPct = 0;
  for (;;) {
    const b0 = systemBusyTicks();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    busyPct = Math.round((100 * (systemBusyTicks() - b0)) / CLK_TCK / ((Date.now() - t0) / 1000));
    const waitedS = Math.round((Date.now() - start) / 1000);
    if (busyPct <= maxBusyPct) return { busyPct, waitedS, quiet: true };
    if (waitedS >= timeoutS) return { busyPct, waitedS, quiet: false };
  }
}
