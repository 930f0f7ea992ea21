/**
 * 100,000 random and mutated requests against a running service: random paths, methods, bodies,
 * ids, huge numbers, deep JSON, wrong content types. Zero crashes, no 5xx but 503, every error a
 * JSON {error, message}, and watched read states unchanged (the fuzzer only ever sends them requests
 * that are invalid by construction; random and mutated requests go to other users).
 */
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rng } from './api-suite.js';
import { call } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';

const TOTAL = Number(process.env.FUZZ_REQUESTS ?? 100_000);
const CONCURRENCY = 64;
const WATCHED = ['7000001', '7000002', '18446744073709551615'];

let s: RunningService;
beforeAll(async () => {
  s = await startService({ shards: 2, capacity: 20_000, maxUsers: 2_000 });
});
afterAll(async () => {
  await s.close();
});

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function send(port: number, method: string, path: string, body: string | undefined, contentType: string | undefined): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (contentType !== undefined) headers['content-type'] = contentType;
    const req = request({ host: '127.0.0.1', port, method, path: path.replace(/ /g, '%20'), agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

const WEIRD_IDS = ['0', '01', '-1', '1.5', '1e3', ' 1', '18446744073709551616', '99999999999999999999', '123456789012345678901', '', 'abc', '%00', '0x1f', '9007199254740993'];
const WEIRD_VALUES: unknown[] = [null, true, -1, 0, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 64, '5', '', [], {}, [1, 2], { a: 1 }, 'x'.repeat(1000)];

function id(r: R): string {
  return r() < 0.5 ? String(1 + Math.floor(r() * 5000)) : String(100000 + Math.floor(r() * 1e9));
}

function validBody(r: R, kind: string): Record<string, unknown> {
  switch (kind) {
    case 'ack':
      return { message_id: id(r), ...(r() < 0.5 ? { mention_count: Math.floor(r() * 10) } : {}), ...(r() < 0.2 ? { manual: r() < 0.5 } : {}) };
    case 'mentions':
      return r() < 0.5 ? {} : { message_id: id(r), count: 1 + Math.floor(r() * 5) };
    case 'patch':
      return { last_pin_timestamp: Math.floor(r() * 1e12), flags: Math.floor(r() * 100) };
    case 'bulk':
      return { read_states: [{ channel_id: id(r), message_id: id(r) }] };
    case 'fanout':
      return { message_id: id(r), user_ids: [id(r), id(r)] };
    default:
      return { ops: [{ op: pick(r, ['get', 'mention', 'delete']), user_id: id(r), channel_id: id(r) }] };
  }
}

/** Breaks a valid body so that it is certainly invalid: a wrong type, range, or unknown field. */
function breakBody(r: R, body: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body };
  const k = Math.floor(r() * 3);
  if (k === 0) out[pick(r, ['extra', '__proto__x', 'userId', 'constructor'])] = pick(r, WEIRD_VALUES);
  else if (k === 1) {
    const key = pick(r, Object.keys(out).length > 0 ? Object.keys(out) : ['extra']);
    // a value of the wrong type or out of range for that key
    const invalid: Record<string, unknown[]> = {
      manual: [null, 'true', 1, 0, {}, []],
      mention_count: ['5', -1, 1.5, 2 ** 31, null],
      count: ['5', 0, 1001, 1.5, null],
      flags: ['5', -1, 2 ** 32, 1.5, null],
      last_pin_timestamp: ['5', -1, 2 ** 53, 0.5, null],
    };
    out[key] = pick(r, invalid[key] ?? [null, {}, [], true, 'x', -1, 1.5, 2 ** 64, '01', '18446744073709551616']);
  } else out['nested'] = JSON.parse('['.repeat(50) + ']'.repeat(50));
  return out;
}

function randomRequest(r: R, watchedOnly: boolean): { method: string; path: string; body?: string; type?: string } {
  const user = watchedOnly ? pick(r, WATCHED) : r() < 0.1 ? pick(r, WEIRD_IDS) : id(r);
  const chan = watchedOnly ? pick(r, WATCHED) : r() < 0.1 ? pick(r, WEIRD_IDS) : id(r);
  const kind = pick(r, ['ack', 'mentions', 'patch', 'bulk', 'fanout', 'batch', 'get', 'delete', 'random']);
  let method = 'POST';
  let path: string;
  switch (kind) {
    case 'ack':
    case 'mentions':
      path = `/v1/users/${user}/read-states/${chan}/${kind}`;
      break;
    case 'patch':
      method = 'PATCH';
      path = `/v1/users/${user}/read-states/${chan}`;
      break;
    case 'bulk':
      path = `/v1/users/${user}/read-states/ack-bulk`;
      break;
    case 'fanout':
      path = `/v1/channels/${chan}/mentions`;
      break;
    case 'batch':
      path = '/v1/batch';
      break;
    case 'get':
      method = 'GET';
      path = r() < 0.5 ? `/v1/users/${user}/read-states/${chan}` : `/v1/users/${user}/read-states`;
      break;
    case 'delete':
      method = 'DELETE';
      path = `/v1/users/${user}/read-states/${chan}`;
      break;
    default:
      method = pick(r, ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);
      path = pick(r, ['/', '/v1', '/v1/users', `/v1/users/${user}`, '/v1/users//read-states', `/v1/users/${user}/read-states/${chan}/nope`, '/%', '/v1/batch?x=1', '/' + 'a'.repeat(3000)]);
  }
  if (method === 'GET' || method === 'DELETE' || method === 'HEAD' || method === 'OPTIONS') {
    // Reads and deletes of watched read states would be valid: watched ones only get writes.
    if (watchedOnly) return randomRequest(r, true);
    return { method, path };
  }
  let body: unknown = validBody(r, kind === 'random' ? 'ack' : kind);
  if (kind === 'batch' && watchedOnly) body = { ops: [{ op: 'mention', user_id: user, channel_id: chan }] };
  if (kind === 'bulk' && watchedOnly) body = { read_states: [{ channel_id: chan, message_id: '1' }] };
  if (kind === 'fanout' && watchedOnly) body = { message_id: '1', user_ids: [user] };
  const mutate = watchedOnly || r() < 0.6;
  if (mutate) {
    const m = Math.floor(r() * 6);
    if (m === 0) {
      const json = JSON.stringify(body);
      return { method, path, body: json.slice(0, Math.min(json.length - 1, 1 + Math.floor(r() * 20))), type: 'application/json' };
    }
    if (m === 1) return { method, path, body: JSON.stringify(body), type: pick(r, ['text/plain', 'application/x-www-form-urlencoded', 'application/xml', 'multipart/form-data']) };
    if (m === 2) return { method, path, body: '{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}', type: 'application/json' };
    if (m === 3 && kind === 'batch') body = { ops: [(body as { ops: unknown[] }).ops[0], { op: 'ack', user_id: user, channel_id: chan, message_id: 5 }] };
    else body = breakBody(r, body as Record<string, unknown>);
  }
  return { method, path, body: JSON.stringify(body), type: 'application/json' };
}

it(`survives ${TOTAL} random and mutated requests`, async () => {
  const port = Number(new URL(s.url).port);
  for (const u of WATCHED) for (const c of WATCHED) await call(s.url, 'POST', `/v1/users/${u}/read-states/${c}/ack`, { message_id: '12345', mention_count: 3 });
  const snapshot = async () => Promise.all(WATCHED.map(async (u) => (await call(s.url, 'GET', `/v1/users/${u}/read-states`)).body));
  const before = await snapshot();
  const r = rng(20261126);
  const statuses = new Map<number, number>();
  let next = 0;
  const bad: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < TOTAL) {
      next++;
      const q = randomRequest(r, r() < 0.3);
      const res = await send(port, q.method, q.path, q.body, q.type);
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      if (res.status >= 500 && res.status !== 503) bad.push(`${res.status} ${q.method} ${q.path.slice(0, 80)} ${String(q.body).slice(0, 120)} -> ${res.text.slice(0, 200)}`);
      if (res.status >= 400 && q.method !== 'HEAD') {
        let ok = false;
        try {
          const j = JSON.parse(res.text) as { error?: unknown; message?: unknown };
          ok = typeof j.error === 'string' && typeof j.message === 'string';
        } catch {
          ok = false;
        }
        if (!ok) bad.push(`non-JSON error ${res.status} ${q.method} ${q.path.slice(0, 80)}: ${res.text.slice(0, 100)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  console.log('fuzz statuses:', JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0]))));
  expect(bad.slice(0, 10)).toEqual([]);
  expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(TOTAL);
  expect(await snapshot()).toEqual(before);
  expect((await call(s.url, 'GET', '/ready')).status).toBe(200);
}, 600_000);
