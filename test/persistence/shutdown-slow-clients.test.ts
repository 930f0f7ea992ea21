/**
 * SIGTERM ends the process even while clients hold connections open: three trickle request
 * bodies one byte every 2 s, one sits idle on keep-alive. In-flight requests get their grace
 * period (a third of --shutdown-timeout), then every connection is closed, the acknowledged
 * write is flushed, and the process exits 0 well within --shutdown-timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';

const SHUTDOWN_TIMEOUT_MS = 9_000;
/** What the test allows beyond the timeout: process teardown on a loaded two-core machine. */
const EXIT_MARGIN_MS = 6_000;

afterAll(async () => {
  await stopAllChildren();
});

interface RawClient {
  socket: Socket;
  received: string;
  closed: Promise<void>;
  isClosed: boolean;
}

function rawClient(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const client: RawClient = { socket, received: '', closed: Promise.resolve(), isClosed: false };
    client.closed = new Promise((r) =>
      socket.once('close', () => {
        client.isClosed = true;
        r();
      }),
    );
    socket.on('data', (d: Buffer) => (client.received += d.toString()));
    // A reset is what a destroyed connection looks like from here; the close event follows.
    socket.on('error', () => {});
    socket.once('connect', () => resolve(client));
    socket.once('error', reject);
  });
}

function write(socket: Socket, text: string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(text, (err) => (err ? reject(err) : resolve())));
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/** With Expect: 100-continue, the server's "100 Continue" says it has parsed the headers and started the request. */
const ackHead = (user: number, length: number): string =>
  `POST /v1/users/${user}/read-states/9/ack HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n`;

it('exits 0 within --shutdown-timeout with trickling and idle clients, and the acknowledged write survives', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-shutdown-'));
  const args = ['--shards', '1', '--capacity', '1000', '--data-dir', dir, '--shutdown-timeout', String(SHUTDOWN_TIMEOUT_MS)];
  const timers: NodeJS.Timeout[] = [];
  try {
    const port = await freePort();
    const svc = new ChildService(port, args);
    await svc.start();
    const acked = await call(svc.url, 'POST', '/v1/users/7/read-states/9/ack', { message_id: '123' });
    expect(acked.status).toBe(200);

    // Three clients that announce 200 bytes of body and send one every 2 s.
    const tricklers = await Promise.all([1, 2, 3].map(() => rawClient(port)));
    const sent = [0, 0, 0];
    for (const [i, c] of tricklers.entries()) {
      await write(c.socket, ackHead(100 + i, 200) + ' ');
      sent[i] = 1;
      timers.push(
        setInterval(() => {
          if (!c.isClosed) c.socket.write(' ', () => sent[i]++);
        }, 2_000),
      );
    }
    // One idle keep-alive connection that has had its answer.
    const idle = await rawClient(port);
    await write(idle.socket, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    await until('the idle client to get its answer', () => idle.received.includes('{"status":"ok"}'), 10_000);
    // One that finishes its body only once the stop has begun: it must get our 503, not fastify's.
    const late = await rawClient(port);
    const lateBody = '{"message_id":"456"}';
    await write(late.socket, ackHead(200, lateBody.length) + lateBody.slice(0, 5));
    const started = (c: RawClient): boolean => c.received.includes('100 Continue');
    await until('the server to start every request', () => [...tricklers, late].every(started), 15_000);
    await until('every trickler to have sent two bytes', () => sent.every((n) => n >= 2), 15_000);
    expect(tricklers.some((c) => c.isClosed)).toBe(false);

    const signalledAt = Date.now();
    const exited = svc.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS + 30_000);
    // The listener closes first thing in the stop; from then on the service is closing.
    await until('the listener to close', () => refusesConnections(port), 5_000);
    await write(late.socket, lateBody.slice(5));
    await until('the late request to be answered', () => late.received.includes('\r\n\r\n{'), 5_000);
    const [head, body] = late.received.slice(late.received.indexOf('HTTP/1.1 503')).split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head.toLowerCase()).toContain('retry-after: 1');
    const answer = JSON.parse(body) as { error: string; message: string };
    expect(answer.error).toBe('SHUTTING_DOWN');
    expect(answer.message).toContain('not applied');

    const code = await exited;
    const tookMs = Date.now() - signalledAt;
    expect(code, svc.output).toBe(0);
    expect(tookMs, svc.output).toBeLessThan(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS);
    expect(svc.output).toContain('stopped: every change is in the store');
    // The slow path ran: the tricklers were still in their requests when the grace period ended.
    const forced = /"connections":(\d+)[^\n]*whose requests had not ended in time/.exec(svc.output);
    expect(forced, svc.output).not.toBeNull();
    expect(Number(forced![1])).toBeGreaterThanOrEqual(3);
    await Promise.all([...tricklers, idle, late].map((c) => c.closed));

    // The acknowledged write is in the store; the refused one was not applied.
    const again = new ChildService(await freePort(), args);
    await again.start();
    const got = await call(again.url, 'GET', '/v1/users/7/read-states/9');
    expect(got.status).toBe(200);
    expect((got.body as { last_message_id: string }).last_message_id).toBe('123');
    expect((await call(again.url, 'GET', '/v1/users/200/read-states/9')).status).toBe(404);
    expect(await again.stop('SIGTERM')).toBe(0);
  } finally {
    for (const t of timers) clearInterval(t);
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
