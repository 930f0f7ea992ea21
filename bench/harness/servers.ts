/**
 * The services under test as child processes, one at a time: start (with --trace-gc), wait for
 * /ready, read /v1/stats, stop. Their stdout and stderr go to a log file; every --trace-gc line is
 * also parsed as it arrives (V8 writes one line per collection, flushed, at the end of the pause)
 * and kept with its arrival time, so GC pauses can be counted per measured window and per second.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../common.js';
import { serviceEnv } from '../service-env.js';

/**
 * The service's variants, to measure what the redo journal costs: slab-nojournal (--journal off),
 * slab-fsync (--journal-fsync-ms 0: an fsync before each reply), slab-group (--journal-fsync-ms 5:
 * group commit).
 */
export type ImplName = 'slab' | 'slab-nojournal' | 'slab-fsync' | 'slab-group' | 'naive' | 'ceiling';
export const IMPLS: readonly ImplName[] = ['slab', 'slab-nojournal', 'slab-fsync', 'slab-group', 'naive', 'ceiling'];

const SLAB_VARIANTS: Record<string, string[]> = {
  slab: [],
  'slab-nojournal': ['--journal', 'off'],
  'slab-fsync': ['--journal-fsync-ms', '0'],
  'slab-group': ['--journal-fsync-ms', '5'],
};

/** Whether the impl is the service itself (any journal setting). */
export function isSlab(impl: ImplName): boolean {
  return impl in SLAB_VARIANTS;
}

export interface GcEvent {
  /** epoch ms when the line arrived (the end of the pause) */
  atMs: number;
  isolate: string;
  /** ms since the isolate started, as printed */
  isolateMs: number;
  /** 'Scavenge', 'Mark-Compact', 'Mark-Compact (reduce)', 'Minor Mark-Sweep', ... */
  kind: string;
  pauseMs: number;
}

// [pid:0x55d5c0a2f000]    12345 ms: Scavenge 3.2 (4.5) -> 2.1 (5.5) MB, 1.23 / 0.00 ms  (...)
const TRACE_GC = /^\[(\d+):(0x[0-9a-f]+)\]\s+(\d+) ms: ([A-Za-z][A-Za-z -]*?(?: \(reduce\))?) [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, ([\d.]+) \/ ([\d.]+) ms/;

export function isMajor(kind: string): boolean {
  return kind.startsWith('Mark-Compact') || kind.startsWith('Mark-Sweep');
}

export interface ServerSpec {
  impl: ImplName;
  port: number;
  /** node flags (before the script) */
  nodeFlags: string[];
  script: string;
  args: string[];
  logFile: string;
}

export class Server {
  readonly url: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<number | null>;
  exitCode: number | null = null;
  readonly gcEvents: GcEvent[] = [];
  private readonly log: WriteStream;
  private partial = '';
  /** the last lines of output (errors, for a failure message) */
  tail: string[] = [];

  constructor(readonly spec: ServerSpec) {
    this.url = `http://127.0.0.1:${spec.port}`;
    this.log = createWriteStream(spec.logFile);
    this.proc = spawn(process.execPath, [...spec.nodeFlags, spec.script, ...spec.args], { cwd: REPO_ROOT, env: serviceEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) =>
      this.proc.on('exit', (code, signal) => {
        this.exitCode = code ?? (signal !== null ? 128 : null);
        resolve(this.exitCode);
      }),
    );
    this.proc.stdout!.on('data', (d: Buffer) => this.onData(d));
    this.proc.stderr!.on('data', (d: Buffer) => this.onData(d));
  }

  /** As run from the repository root (result files write its paths relative: common.ts machineNeutral). */
  get commandLine(): string {
    return ['node', ...this.spec.nodeFlags, this.spec.script, ...this.spec.args].join(' ');
  }

  private onData(d: Buffer): void {
    const now = performance.timeOrigin + performance.now();
    this.log.write(d);
    const text = this.partial + d.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = TRACE_GC.exec(line);
      if (m !== null) {
        this.gcEvents.push({ atMs: now, isolate: m[2], isolateMs: Number(m[3]), kind: m[4], pauseMs: Number(m[5]) });
      } else if (line.trim().length > 0) {
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
      }
    }
  }

  /**
   * Isolate addresses in start order: the first is the main thread; workers follow. A line's
   * arrival minus its isolate-relative ms estimates when that isolate started.
   */
  isolateLabels(): Map<string, string> {
    const start = new Map<string, number>();
    for (const e of this.gcEvents) {
      const s = e.atMs - e.isolateMs;
      const cur = start.get(e.isolate);
      if (cur === undefined || s < cur) start.set(e.isolate, s);
    }
    const ordered = [...start.entries()].sort((a, b) => a[1] - b[1]);
    const out = new Map<string, string>();
    ordered.forEach(([iso], i) => out.set(iso, i === 0 ? 'main' : `worker-${i}`));
    return out;
  }

  async waitReady(timeoutMs = 180_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.exitCode !== null) throw new Error(`${this.spec.impl} exited with ${this.exitCode}:\n${this.tail.join('\n')}`);
      try {
        const r = await fetch(this.url + '/ready');
        await r.arrayBuffer();
        if (r.status === 200) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${this.spec.impl} not ready after ${timeoutMs} ms:\n${this.tail.join('\n')}`);
  }

  async json(path: string): Promise<unknown> {
    try {
      const r = await fetch(this.url + path);
      if (r.status !== 200) {
        await r.arrayBuffer();
        return undefined;
      }
      return path === '/metrics' ? await r.text() : await r.json();
    } catch {
      return undefined;
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 30_000): Promise<{ code: number | null; seconds: number; killed: boolean }> {
    const t0 = Date.now();
    let killed = false;
    if (this.exitCode === null) {
      this.proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        killed = true;
        this.proc.kill('SIGKILL');
      }, graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((r) => this.log.end(() => r()));
    return { code: this.exitCode, seconds: (Date.now() - t0) / 1000, killed };
  }
}

/** The bare fastify server of bench/ceiling-server.ts (built). */
export const CEILING_SCRIPT = 'dist/bench/ceiling-server.js';

export interface ServiceFlags {
  capacity: number;
  maxUsers: number;
  batchOps: number;
  /** 'memory': the in-process MemoryStore (Maps on the main thread); 'sqlite': the store worker, in dataDir */
  store: 'memory' | 'sqlite';
  dataDir: string;
}

/**
 * The services' graceful shutdown (writing every changed read state to the store) may take this
 * long; the harness waits that plus STOP_MARGIN_MS before a SIGKILL. A batch run at 5M leaves over
 * a million changed read states, which the service's default 30 s did not cover.
 */
export const SHUTDOWN_TIMEOUT_MS = 180_000;
export const STOP_MARGIN_MS = 15_000;

export function serverSpec(impl: ImplName, port: number, f: ServiceFlags, nodeFlags: string[], logFile: string, slabScript = 'dist/src/main.js'): ServerSpec {
  const service = [
    '--port', String(port), '--shards', '1', '--store', f.store, ...(f.store === 'sqlite' ? ['--data-dir', f.dataDir] : []),
    '--capacity', String(f.capacity), '--max-users', String(f.maxUsers),
    '--flush-delay', '30000', '--log-level', 'warn', '--shutdown-timeout', String(SHUTDOWN_TIMEOUT_MS),
  ];
  switch (impl) {
    case 'slab':
    case 'slab-nojournal':
    case 'slab-fsync':
    case 'slab-group':
      return { impl, port, nodeFlags, script: slabScript, args: [...service, ...SLAB_VARIANTS[impl]], logFile };
    case 'naive':
      return { impl, port, nodeFlags, script: 'dist/bench/naive/main.js', args: service, logFile };
    case 'ceiling':
      return { impl, port, nodeFlags, script: CEILING_SCRIPT, args: ['--port', String(port), '--batch-ops', String(f.batchOps)], logFile };
  }
}

/** utime + stime of a whole process (all threads), in clock ticks; 0 if unreadable. */
export function processTicks(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * Nanoseconds a thread has spent runnable but waiting for a CPU (schedstat's second field):
 * `tid` undefined reads the calling thread. 0 if unreadable (not Linux).
 */
export function runQueueWaitNs(pid?: number, tid?: number): number {
  try {
    const path = pid === undefined ? '/proc/thread-self/schedstat' : `/proc/${pid}/task/${tid ?? pid}/schedstat`;
    return Number(readFileSync(path, 'latin1').split(' ')[1]);
  } catch {
    return 0;
  }
}
