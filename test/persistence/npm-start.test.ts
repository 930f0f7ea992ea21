/**
 * The README's first command: `npm start` runs the service on its embedded store, passes flags
 * through, and a SIGTERM to npm stops the service cleanly (exit 0, nothing left running).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { freePort } from '../support/child-service.js';

it('npm start -- <flags> serves, and SIGTERM exits 0 after flushing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-npm-start-'));
  const port = await freePort();
  const npm = spawn('npm', ['start', '--', '--port', String(port), '--shards', '1', '--capacity', '1000', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  npm.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 90_000;
    let ready = false;
    while (!ready && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      ready = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status === 200, () => false);
    }
    expect(ready, out).toBe(true);
    const r = await fetch(`http://127.0.0.1:${port}/v1/users/1/read-states/2/mentions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(200);
    expect(out).toContain('"store":"sqlite"');
    // the allocator setting package.json's start script gives the service (bench/service-env.ts)
    expect(out).toContain('"mallocMmapThreshold":"131072"');
    npm.kill('SIGTERM');
    expect(await exited, out).toBe(0);
    expect(out).toContain('stopped: every change is in the store');
    // the port is free again: nothing was left running
    const stillUp = await fetch(`http://127.0.0.1:${port}/health`).then(() => true, () => false);
    expect(stillUp).toBe(false);
  } finally {
    npm.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
