/**
 * --auth-token-file over real HTTP: every route but /health needs `Authorization: Bearer <token>`,
 * and refusals are 401 UNAUTHORIZED in the error shape with a WWW-Authenticate challenge.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/http-client.js';
import { ChildService, freePort, stopAllChildren } from '../support/child-service.js';
import { startService, type RunningService } from '../support/service.js';

const TOKEN = 's3cret-token_with.symbols~42';
const auth = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

let s: RunningService;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rs-auth-'));
  s = await startService({ shards: 1, capacity: 1000, maxUsers: 100, authToken: TOKEN, authTokenFile: 'test' });
});
afterAll(async () => {
  await s?.close();
  await stopAllChildren();
  rmSync(dir, { recursive: true, force: true });
});

const CLOSED: [string, string, unknown?][] = [
  ['GET', '/ready'],
  ['GET', '/metrics'],
  ['GET', '/docs/json'],
  ['GET', '/v1/stats'],
  ['GET', '/v1/users/1/read-states'],
  ['POST', '/v1/users/1/read-states/2/ack', { message_id: '5' }],
  ['POST', '/v1/batch', { ops: [{ op: 'get', user_id: '1', channel_id: '2' }] }],
  ['GET', '/no/such/route'],
];

function expectUnauthorized(r: { status: number; body: unknown; headers: Headers }): void {
  expect(r.status).toBe(401);
  expect((r.body as { error: string }).error).toBe('UNAUTHORIZED');
  expect(typeof (r.body as { message: string }).message).toBe('string');
  expect(r.headers.get('www-authenticate')).toMatch(/^Bearer realm="read-states"/);
}

describe('with --auth-token-file', () => {
  it('/health is open, with or without a token', async () => {
    expect((await call(s.url, 'GET', '/health')).status).toBe(200);
    expect((await call(s.url, 'GET', '/health', undefined, auth('wrong'))).status).toBe(200);
    expect((await fetch(s.url + '/health', { method: 'HEAD' })).status).toBe(200);
    expect((await call(s.url, 'GET', '/health?x=1')).status).toBe(200);
  });

  it.each(CLOSED)('%s %s without a token is 401', async (method, path, body) => {
    const r = await call(s.url, method, path, body);
    expectUnauthorized(r);
    expect(r.headers.get('www-authenticate')).not.toContain('invalid_token');
  });

  it.each(CLOSED)('%s %s with a wrong token is 401 invalid_token', async (method, path, body) => {
    for (const token of ['wrong', TOKEN.slice(0, -1), TOKEN + 'x', TOKEN.toUpperCase()]) {
      const r = await call(s.url, method, path, body, auth(token));
      expectUnauthorized(r);
      expect(r.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
  });

  it('other schemes and malformed headers are 401', async () => {
    for (const value of [`Basic ${Buffer.from('u:' + TOKEN).toString('base64')}`, TOKEN, 'Bearer', 'Bearer ', `Bearer ${TOKEN} extra`]) {
      expectUnauthorized(await call(s.url, 'GET', '/metrics', undefined, { authorization: value }));
    }
  });

  it('the right token opens every route (the scheme is case-insensitive)', async () => {
    expect((await call(s.url, 'GET', '/ready', undefined, auth(TOKEN))).status).toBe(200);
    expect((await call(s.url, 'GET', '/metrics', undefined, auth(TOKEN))).status).toBe(200);
    expect((await call(s.url, 'GET', '/v1/stats', undefined, { authorization: `bearer ${TOKEN}` })).status).toBe(200);
    const doc = await call(s.url, 'GET', '/docs/json', undefined, auth(TOKEN));
    expect(doc.status).toBe(200);
    expect((doc.body as { openapi: string }).openapi).toMatch(/^3\./);
    const missing = await call(s.url, 'GET', '/no/such/route', undefined, auth(TOKEN));
    expect(missing.status).toBe(404);
    expect((missing.body as { error: string }).error).toBe('ROUTE_NOT_FOUND');
  });

  it('a refused write is not applied', async () => {
    expectUnauthorized(await call(s.url, 'POST', '/v1/users/9/read-states/8/ack', { message_id: '7' }));
    expect((await call(s.url, 'GET', '/v1/users/9/read-states/8', undefined, auth(TOKEN))).status).toBe(404);
    const ok = await call(s.url, 'POST', '/v1/users/9/read-states/8/ack', { message_id: '7' }, auth(TOKEN));
    expect(ok.status).toBe(200);
    expect((ok.body as { last_message_id: string }).last_message_id).toBe('7');
  });
});

describe('the built service', () => {
  it('reads the token from the file (whitespace trimmed) and never logs it', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, `\n  ${TOKEN}  \n`);
    const svc = new ChildService(await freePort(), ['--shards', '1', '--capacity', '1000', '--store', 'memory', '--auth-token-file', file]);
    svc.spawn();
    const deadline = Date.now() + 60_000;
    let ready = 0;
    while (ready !== 200 && svc.exitCode === null && Date.now() < deadline) {
      ready = await fetch(svc.url + '/ready', { headers: auth(TOKEN) }).then((r) => r.status, () => 0);
      if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready, svc.output).toBe(200);
    expect((await fetch(svc.url + '/ready')).status).toBe(401);
    expect((await fetch(svc.url + '/health')).status).toBe(200);
    expect(svc.output).toContain('"authTokenFile"');
    expect(svc.output).not.toContain(TOKEN);
    expect(await svc.stop('SIGTERM')).toBe(0);
  });

  it.each([
    ['a missing file', (d: string) => join(d, 'absent'), /--auth-token-file .*absent cannot be read: ENOENT/],
    ['an empty file', (d: string) => (writeFileSync(join(d, 'empty'), ' \n\t\n'), join(d, 'empty')), /--auth-token-file .*empty is empty/],
  ])('exits 2 at start-up on %s', async (_what, make, message) => {
    const svc = new ChildService(await freePort(), ['--store', 'memory', '--auth-token-file', make(dir)]);
    svc.spawn();
    expect(await svc.exited(30_000)).toBe(2);
    expect(svc.stderr).toMatch(message);
  });
});
