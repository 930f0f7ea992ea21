/**
 * Runs the built service (dist/src/main.js) as a child process, the way operators run it, so
 * that signals, exit codes and restarts are real.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr !== null && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Every child started by a test file, so that a failing test cannot leave one running. */
const running = new Set<ChildService>();

/** Kills whatever a test file's services left running (call from afterAll / afterEach). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop('SIGKILL', 10_000)));
}

export class ChildService {
  readonly url: string;
  private proc: ChildProcess | undefined;
  output = '';
  /** stderr alone (output has both streams interleaved) */
  stderr = '';
  exitCode: number | null = null;
  /** signal that ended the process, if one did (exitCode is null then) */
  exitSignal: NodeJS.Signals | null = null;
  private ended = true;

  constructor(
    readonly port: number,
    readonly args: string[],
    /** added to the test process's environment */
    readonly env: Record<string, string> = {},
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts the process and waits for /ready to answer 200. */
  async start(timeoutMs = 60_000): Promise<void> {
    this.spawn();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.ended) throw new Error(`service exited with ${this.exitCode ?? this.exitSignal}:\n${this.output}`);
      try {
        const res = await fetch(this.url + '/ready');
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`service not ready in ${timeoutMs} ms:\n${this.output}`);
  }

  /** Starts the process without waiting for anything (for one that is expected to exit). */
  spawn(): void {
    this.exitCode = null;
    this.exitSignal = null;
    this.ended = false;
    this.stderr = '';
    const proc = spawn(process.execPath, [MAIN, '--port', String(this.port), '--log-level', 'info', ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...this.env },
    });
    this.proc = proc;
    running.add(this);
    proc.once('exit', () => running.delete(this));
    proc.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    proc.stderr!.on('data', (d: Buffer) => {
      this.output += d.toString();
      this.stderr += d.toString();
    });
    proc.on('exit', (code, signal) => {
      this.exitCode = code;
      this.exitSignal = signal;
      this.ended = true;
    });
  }

  /** Resolves with the exit code once the process has exited, or null if it still runs at the deadline. */
  async exited(timeoutMs: number): Promise<number | null> {
    const proc = this.proc;
    if (proc === undefined || this.ended) return this.exitCode;
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  /** Sends a signal and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 60_000): Promise<number | null> {
    const proc = this.proc;
    if (proc === undefined || this.ended) return this.exitCode;
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }
}
