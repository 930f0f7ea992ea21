/**
 * The benchmark's warm-up (bench/harness/load.ts drive): it runs on the window's own connections
 * and schedule, and nothing sent before the window opens is counted or recorded. A local server
 * answers 201 to every request that arrives in its first 300 ms and 200 afterwards, so the
 * statuses say which phase each recorded request came from, whatever the timing of the machine.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drive } from '../../bench/harness/load.js';
import type { RequestFactory } from '../../bench/harness/workload.js';

const EARLY_MS = 300;
let server: Server;
let url = '';
let connectionsOpened = 0;
let firstRequestAt = 0;

function resetServer(): void {
  connectionsOpened = 0;
  firstRequestAt = 0;
}

beforeAll(async () => {
  server = createServer((req, res) => {
    const now = performance.timeOrigin + performance.now();
    if (firstRequestAt === 0) firstRequestAt = now;
    req.resume();
    req.on('end', () => {
      res.statusCode = now - firstRequestAt < EARLY_MS ? 201 : 200;
      res.end('{}');
    });
  });
  server.on('connection', () => connectionsOpened++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const factory = { next: () => ({ method: 'POST', path: '/x', body: '{"a":1}' }) } as unknown as RequestFactory;

describe('drive with a warm-up', () => {
  it('open loop: records only requests scheduled after the warm-up, on the same connections', async () => {
    resetServer();
    let opened = 0;
    let openedAt = 0;
    const d = await drive({
      url,
      mode: 'open',
      connections: 8,
      rps: 200,
      pacing: 'smooth',
      seconds: 1,
      warmupSeconds: 1,
      onWindowStart: () => {
        opened++;
        openedAt = performance.timeOrigin + performance.now();
      },
      factory,
      record: true,
    });
    expect(opened).toBe(1);
    // the warm-up's requests (the early 201s among them) are not in the window
    expect(d.statuses['201']).toBeUndefined();
    expect(d.statuses['200']).toBeGreaterThan(150);
    expect(d.statuses['200']).toBeLessThanOrEqual(Math.ceil(200 * d.seconds) + 1);
    expect(d.requests).toBe(d.statuses['200']);
    expect(d.latency.count).toBe(d.requests);
    // the window opened after the warm-up, and its start is the one the result reports
    expect(openedAt - firstRequestAt).toBeGreaterThan(900);
    expect(Math.abs(d.startMs - openedAt)).toBeLessThan(50);
    expect(d.seconds).toBeGreaterThan(0.9);
    expect(d.seconds).toBeLessThan(1.5);
    // per-second series start at the window
    expect(d.perSecond[0].done).toBeGreaterThan(100);
    // one set of connections for warm-up and window
    expect(connectionsOpened).toBe(8);
  });

  it('without a warm-up the first requests are recorded (the control of the test above)', async () => {
    resetServer();
    const d = await drive({ url, mode: 'open', connections: 8, rps: 200, pacing: 'smooth', seconds: 1, factory, record: true });
    expect(d.statuses['201']).toBeGreaterThan(20);
    expect(d.requests).toBe((d.statuses['200'] ?? 0) + d.statuses['201']);
  });

  it('closed loop: the same rule', async () => {
    resetServer();
    const d = await drive({ url, mode: 'closed', connections: 4, pacing: 'smooth', seconds: 1, warmupSeconds: 1, factory, record: true });
    expect(d.statuses['201']).toBeUndefined();
    expect(d.requests).toBeGreaterThan(0);
    expect(d.latency.count).toBe(d.requests);
    expect(connectionsOpened).toBe(4);
  });
});
