/**
 * Requests that reach the service while it stops are answered 503 SHUTTING_DOWN in the service's
 * error shape (fastify's own 503 while closing has another shape), with Retry-After, and are not
 * applied: one whose body was still arriving when the stop began, and one pipelined behind it.
 */
import { connect, type Socket } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { inFlightGraceMs } from '../../src/http-shutdown.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { startService, type RunningService } from '../support/service.js';

let s: RunningService | undefined;
afterAll(async () => {
  await s?.close().catch(() => {});
});

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

it('grace for in-flight requests is a third of the timeout, at most 5 s', () => {
  expect(inFlightGraceMs(0)).toBe(0);
  expect(inFlightGraceMs(6_000)).toBe(2_000);
  expect(inFlightGraceMs(30_000)).toBe(5_000);
});

it('answers SHUTTING_DOWN in the error shape to requests that arrive while stopping', async () => {
  const store = new MemoryStore();
  s = await startService({ shards: 1, capacity: 1000, maxUsers: 100, shutdownTimeoutMs: 15_000 }, store);
  const { service } = s;
  const port = Number(new URL(s.url).port);
  const sock: Socket = connect(port, '127.0.0.1');
  let received = '';
  sock.on('data', (d: Buffer) => (received += d.toString()));
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise((r) => sock.once('connect', r));
  const body = '{"message_id":"456"}';
  // 100 Continue is the server's word that it has parsed the headers and started the request.
  sock.write(
    `POST /v1/users/1/read-states/9/ack HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n${body.slice(0, 3)}`,
  );
  await until('the request to be in flight', () => received.includes('100 Continue'), 10_000);

  const stopped = service.close();
  s = undefined;
  await until('the listener to close', () => refusesConnections(port), 5_000);
  sock.write(body.slice(3) + 'GET /v1/stats HTTP/1.1\r\nHost: x\r\n\r\n');
  await closed;
  expect(await stopped).toBe(0);

  const answers = received.split(/(?=HTTP\/1\.1 )/).filter((a) => !a.startsWith('HTTP/1.1 100 '));
  expect(answers, received).toHaveLength(2);
  for (const answer of answers) {
    const [head, json] = answer.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head.toLowerCase()).toContain('retry-after: 1');
    expect(JSON.parse(json)).toEqual({ error: 'SHUTTING_DOWN', message: expect.stringContaining('not applied'), applied: false });
  }
  // the pipelined one is told to go away
  expect(answers[1].toLowerCase()).toContain('connection: close');
  // and the ack was not applied: the flush at shutdown wrote nothing for that user
  expect(await store.load(1, 0)).toHaveLength(0);
});
