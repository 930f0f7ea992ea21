/**
 * Cluster mode's HTTP routing over real HTTP: three in-process services, each with a fake view of
 * who owns which partition, send requests on to owners, refuse what has no owner, never forward
 * twice, and turn answers whose lease ended into LEASE_LOST.
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type HttpResult } from '../support/http-client.js';
import { startService, type RunningService } from '../support/service.js';
import { startStub, type Stub } from '../support/stub-server.js';
import { until } from '../support/until.js';
import { FakeCluster, type FakeClusterView, usersOfPartition } from '../support/fake-cluster-view.js';

const PARTITIONS = 4;
const TOKEN = 'cluster-forwarding-test';
const FORWARD_TIMEOUT_MS = 1500;
const IDS = ['a', 'b', 'c'] as const;
type Id = (typeof IDS)[number];
/** partition p is owned by IDS[p] under EPOCHS[p]; partition 3 has no owner */
const EPOCHS = [3, 5, 7];
const UNOWNED = 3;

const cluster = new FakeCluster(PARTITIONS, [...IDS]);
const services = new Map<Id, RunningService>();
const [uA, uA2] = usersOfPartition(0, PARTITIONS, 2);
const [uB, uB2] = usersOfPartition(1, PARTITIONS, 2);
const [uC, uC2] = usersOfPartition(2, PARTITIONS, 2);
const [uX] = usersOfPartition(UNOWNED, PARTITIONS, 1);

function url(id: Id): string {
  const s = services.get(id);
  if (s === undefined) throw new Error(`instance ${id} not started`);
  return s.url;
}
function view(id: Id): FakeClusterView {
  return cluster.view(id);
}
function req(id: Id, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  return call(url(id), method, path, body, { authorization: `Bearer ${TOKEN}`, ...headers });
}
function ownerHeader(p: number): string {
  return `${IDS[p]} ${p} ${EPOCHS[p]}`;
}
/** What a caller sees of an answer: status, body and the headers routing must carry over. */
function seen(r: HttpResult): unknown {
  return {
    status: r.status,
    body: r.body,
    owner: r.headers.get('read-states-owner'),
    type: r.headers.get('content-type'),
    retry: r.headers.get('retry-after'),
  };
}
/** The same request through every instance: the owner's answer, checked equal to the others'. */
async function viaAll(method: string, path: string, body?: unknown): Promise<HttpResult> {
  const answers: HttpResult[] = [];
  for (const id of IDS) answers.push(await req(id, method, path, body));
  for (const r of answers.slice(1)) expect(seen(r)).toEqual(seen(answers[0]));
  return answers[0];
}
function expectRefused(r: HttpResult, code: string, applied: false | null): void {
  expect(r.status).toBe(503);
  expect(r.headers.get('retry-after')).toBe('1');
  expect(r.body).toMatchObject({ error: code, applied });
}

/** A URL where nothing listens any more. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

beforeAll(async () => {
  for (let p = 0; p < IDS.length; p++) cluster.assign(p, IDS[p], EPOCHS[p]);
  for (const id of IDS) {
    const s = await startService({ authToken: TOKEN }, undefined, { clusterView: view(id), forwardTimeoutMs: FORWARD_TIMEOUT_MS });
    services.set(id, s);
    cluster.setUrl(id, s.url);
  }
});
afterAll(async () => {
  for (const s of services.values()) await s.close();
});

describe('single-user routes through a non-owner', () => {
  it('answer as the owner does: status, body, content-type and the owner header', async () => {
    const one = `/v1/users/${uB}/read-states/10`;
    const forwardedBefore = view('a').counters.forwarded;
    const ack = await req('a', 'POST', one + '/ack', { message_id: '100', mention_count: 2 });
    expect(ack.status).toBe(200);
    expect(ack.headers.get('read-states-owner')).toBe(ownerHeader(1));
    expect(ack.body).toMatchObject({ user_id: uB, channel_id: '10', last_message_id: '100', mention_count: 2 });
    expect(view('a').counters.forwarded).toBe(forwardedBefore + 1);
    // the read state is on the owner, as the forwarded answer said
    expect((await viaAll('GET', one)).body).toEqual(ack.body);

    const mention = await req('c', 'POST', one + '/mentions', { message_id: '101' });
    expect(mention.status).toBe(200);
    expect(mention.headers.get('read-states-owner')).toBe(ownerHeader(1));
    expect((await viaAll('GET', one)).body).toEqual(mention.body);

    const patch = await req('a', 'PATCH', one, { last_pin_timestamp: 1700000000000, flags: 4 });
    expect(patch.status).toBe(200);
    expect((await viaAll('GET', one)).body).toEqual(patch.body);

    const bulk = await req('c', 'POST', `/v1/users/${uB}/read-states/ack-bulk`, {
      read_states: [
        { channel_id: '11', message_id: '110' },
        { channel_id: '12', message_id: '120' },
      ],
    });
    expect(bulk.status).toBe(200);
    expect(bulk.headers.get('read-states-owner')).toBe(ownerHeader(1));
    expect((bulk.body as { read_states: unknown[] }).read_states).toHaveLength(2);

    const list = await viaAll('GET', `/v1/users/${uB}/read-states`);
    expect(list.status).toBe(200);
    expect(list.headers.get('read-states-owner')).toBe(ownerHeader(1));
    expect((list.body as { read_states: unknown[] }).read_states).toHaveLength(3);
    // the query goes on with the path
    const page = await viaAll('GET', `/v1/users/${uB}/read-states?limit=1&after=10`);
    expect((page.body as { read_states: { channel_id: string }[] }).read_states.map((r) => r.channel_id)).toEqual(['11']);
    await viaAll('GET', `/v1/users/${uB}/read-states?since=0`);
    const summary = await viaAll('GET', `/v1/users/${uB}/summary`);
    expect(summary.body).toMatchObject({ user_id: uB, read_states: 3 });

    const del = await req('a', 'DELETE', one);
    expect(del.status).toBe(204);
    expect(del.headers.get('read-states-owner')).toBe(ownerHeader(1));
    const gone = await viaAll('GET', one);
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ error: 'NOT_FOUND' });
    expect(gone.headers.get('read-states-owner')).toBe(ownerHeader(1));
  });

  it('leave validation to the owner, with the same error', async () => {
    const bad = await viaAll('POST', `/v1/users/${uC}/read-states/1/ack`, { message_id: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: 'INVALID_ID' });
    const empty = await viaAll('PATCH', `/v1/users/${uC}/read-states/1`, {});
    expect(empty.body).toMatchObject({ error: 'EMPTY_PATCH' });
    // an id that names no user is rejected where it arrives, as by a single instance
    const noUser = await viaAll('GET', '/v1/users/0/read-states/1');
    expect(noUser.status).toBe(400);
    expect(noUser.headers.get('read-states-owner')).toBeNull();
  });

  it('send the path, the query, the body, the credentials and who forwarded', async () => {
    const stub: Stub = await startStub((_r, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'read-states-owner': 'd 3 9', 'x-other': 'no' });
      res.end('{"ok":true}');
    });
    cluster.setUrl('d', stub.url);
    cluster.assign(UNOWNED, 'd', 9);
    try {
      const r = await req('b', 'POST', `/v1/users/${uX}/read-states/5/ack?x=1`, { message_id: '7' });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ ok: true });
      expect(r.headers.get('read-states-owner')).toBe('d 3 9');
      expect(r.headers.get('x-other')).toBeNull();
      expect(stub.requests).toHaveLength(1);
      const sent = stub.requests[0];
      expect(sent.method).toBe('POST');
      expect(sent.path).toBe(`/v1/users/${uX}/read-states/5/ack?x=1`);
      expect(sent.body).toEqual({ message_id: '7' });
      expect(sent.headers.authorization).toBe(`Bearer ${TOKEN}`);
      expect(sent.headers['read-states-forwarded-by']).toBe('b');
    } finally {
      cluster.assign(UNOWNED, null, 0);
      await stub.close();
    }
  });

  it('read a body sent in chunks off the socket and send it on whole; a body over the limit is refused', async () => {
    const text = JSON.stringify({ message_id: '123', mention_count: 1 });
    const chunks = [text.slice(0, 5), text.slice(5)];
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(next));
      },
    });
    const init = { method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } };
    const res = await fetch(url('a') + `/v1/users/${uC2}/read-states/60/ack`, init as RequestInit);
    expect(res.status).toBe(200);
    expect(res.headers.get('read-states-owner')).toBe(ownerHeader(2));
    expect(await res.json()).toMatchObject({ user_id: uC2, channel_id: '60', last_message_id: '123', mention_count: 1 });
    const big = await req('a', 'POST', `/v1/users/${uC2}/read-states/60/ack`, JSON.stringify({ message_id: '1', pad: 'x'.repeat(1024 * 1024) }));
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ error: 'BODY_TOO_LARGE' });
  });

  it('serve HEAD like GET', async () => {
    const local = await req('c', 'HEAD', `/v1/users/${uC2}/read-states/60`);
    const forwarded = await req('a', 'HEAD', `/v1/users/${uC2}/read-states/60`);
    expect(forwarded.status).toBe(200);
    expect(seen(forwarded)).toEqual(seen(local));
  });
});

describe('refusals', () => {
  it('a forwarded request is never forwarded again', async () => {
    const before = view('a').counters.refusedMoving;
    const r = await req('a', 'POST', `/v1/users/${uB}/read-states/30/ack`, { message_id: '1' }, { 'read-states-forwarded-by': 'c' });
    expectRefused(r, 'PARTITION_UNAVAILABLE', false);
    expect(view('a').counters.refusedMoving).toBe(before + 1);
    expect((await req('b', 'GET', `/v1/users/${uB}/read-states/30`)).status).toBe(404);
    // what the receiver owns, it serves
    const own = await req('a', 'GET', `/v1/users/${uA}/summary`, undefined, { 'read-states-forwarded-by': 'c' });
    expect(own.status).toBe(200);
    expect(own.headers.get('read-states-owner')).toBe(ownerHeader(0));
  });

  it('a partition without an owner, or being handed over, is refused as not applied', async () => {
    const before = view('a').counters.refusedMoving;
    expectRefused(await req('a', 'GET', `/v1/users/${uX}/summary`), 'PARTITION_UNAVAILABLE', false);
    expectRefused(await req('a', 'POST', `/v1/users/${uX}/read-states/1/ack`, { message_id: '1' }), 'PARTITION_UNAVAILABLE', false);
    expect(view('a').counters.refusedMoving).toBe(before + 2);
    view('a').handing.add(0);
    try {
      expectRefused(await req('a', 'POST', `/v1/users/${uA}/read-states/1/ack`, { message_id: '1' }), 'PARTITION_UNAVAILABLE', false);
    } finally {
      view('a').handing.delete(0);
    }
    expect((await req('a', 'GET', `/v1/users/${uA}/read-states/1`)).status).toBe(404);
  });

  it('a handover that begins while the body arrives refuses the op before it is applied', async () => {
    const text = JSON.stringify({ message_id: '77' });
    let release: () => void = () => {};
    const rest = new Promise<void>((r) => (release = r));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode(text.slice(0, 4)));
        else if (sent === 1) {
          await rest;
          controller.enqueue(new TextEncoder().encode(text.slice(4)));
        } else controller.close();
        sent++;
      },
    });
    const a = view('a');
    const asked = a.ownsNowCalls;
    const init = { method: 'POST', body, duplex: 'half', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } };
    const answer = fetch(url('a') + `/v1/users/${uA}/read-states/31/ack`, init as RequestInit);
    try {
      // admitted (a owns the partition), then the handover starts before the body is complete
      await until('the request at its owner', () => a.ownsNowCalls > asked, 5000);
      a.handing.add(0);
      release();
      const res = await answer;
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(res.headers.get('read-states-owner')).toBeNull();
      expect(await res.json()).toMatchObject({ error: 'PARTITION_UNAVAILABLE', applied: false });
    } finally {
      release();
      a.handing.delete(0);
    }
    expect((await req('a', 'GET', `/v1/users/${uA}/read-states/31`)).status).toBe(404);
  });

  it('an owner that cannot be reached: not applied', async () => {
    cluster.setUrl('d', await closedPortUrl());
    cluster.assign(UNOWNED, 'd', 1);
    try {
      const before = view('a').counters.forwardFailures;
      expectRefused(await req('a', 'POST', `/v1/users/${uX}/read-states/1/ack`, { message_id: '1' }), 'PARTITION_UNAVAILABLE', false);
      expectRefused(await req('a', 'GET', `/v1/users/${uX}/read-states`), 'PARTITION_UNAVAILABLE', false);
      expect(view('a').counters.forwardFailures).toBe(before + 2);
    } finally {
      cluster.assign(UNOWNED, null, 0);
    }
  });

  it('an owner that takes the request but never answers: may have been applied, after the timeout', async () => {
    const stub = await startStub(() => {
      // never answers
    });
    cluster.setUrl('e', stub.url);
    cluster.assign(UNOWNED, 'e', 1);
    try {
      const before = view('c').counters.forwardFailures;
      const r = await req('c', 'POST', `/v1/users/${uX}/read-states/1/ack`, { message_id: '1' });
      expectRefused(r, 'FORWARD_FAILED', null);
      expect(stub.requests).toHaveLength(1);
      expect(view('c').counters.forwardFailures).toBe(before + 1);
    } finally {
      cluster.assign(UNOWNED, null, 0);
      await stub.close();
    }
  });
});

describe('POST /v1/batch', () => {
  it('spreads over the owners and answers each op in request order', async () => {
    const ops = [
      { op: 'ack', user_id: uA, channel_id: '20', message_id: '201' },
      { op: 'ack', user_id: uB, channel_id: '20', message_id: '202' },
      { op: 'mention', user_id: uC, channel_id: '20', message_id: '203', count: 3 },
      { op: 'get', user_id: uB, channel_id: '20' },
      { op: 'summary', user_id: uC },
      { op: 'ack', user_id: uX, channel_id: '20', message_id: '204' },
      { op: 'patch', user_id: uA2, channel_id: '21', flags: 2 },
      { op: 'get', user_id: uC2, channel_id: '999' },
      { op: 'ack', user_id: uB2, channel_id: '22', message_id: '205' },
    ];
    const before = { a: { ...view('a').counters }, b: { ...view('b').counters } };
    const r = await req('a', 'POST', '/v1/batch', { ops });
    expect(r.status).toBe(200);
    const results = (r.body as { results: Record<string, unknown>[] }).results;
    expect(results).toHaveLength(ops.length);
    expect(results[0]).toMatchObject({ status: 200, read_state: { user_id: uA, channel_id: '20', last_message_id: '201' } });
    expect(results[1]).toMatchObject({ status: 200, read_state: { user_id: uB, channel_id: '20', last_message_id: '202' } });
    expect(results[2]).toMatchObject({ status: 200, read_state: { user_id: uC, channel_id: '20', mention_count: 3 } });
    expect(results[3]).toMatchObject({ status: 200, read_state: { user_id: uB, channel_id: '20', last_message_id: '202' } });
    expect(results[4]).toMatchObject({ status: 200, summary: { user_id: uC, mention_total: 3 } });
    expect(results[5]).toEqual({ status: 503, error: 'PARTITION_UNAVAILABLE', applied: false });
    expect(results[6]).toMatchObject({ status: 200, read_state: { user_id: uA2, channel_id: '21', flags: 2 } });
    expect(results[7]).toEqual({ status: 404, error: 'NOT_FOUND' });
    expect(results[8]).toMatchObject({ status: 200, read_state: { user_id: uB2, channel_id: '22', last_message_id: '205' } });
    // one sub-batch per other owner
    expect(view('a').counters.forwarded - before.a.forwarded).toBe(2);
    expect(view('a').counters.refusedMoving - before.a.refusedMoving).toBe(1);
    expect(view('b').counters.forwarded - before.b.forwarded).toBe(0);

    // The state is on the owners, and only there: a, made to believe it owns b's partition,
    // has nothing of it.
    expect((await req('b', 'GET', `/v1/users/${uB2}/read-states/22`)).body).toEqual(results[8].read_state);
    expect((await req('c', 'GET', `/v1/users/${uC}/read-states/20`)).body).toEqual(results[2].read_state);
    view('a').owners[1] = 'a';
    try {
      expect((await req('a', 'GET', `/v1/users/${uB2}/read-states/22`)).status).toBe(404);
    } finally {
      view('a').owners[1] = 'b';
    }
  });

  it('answers the same through any instance', async () => {
    const ops = [
      { op: 'get', user_id: uC, channel_id: '20' },
      { op: 'summary', user_id: uB },
      { op: 'get', user_id: uA, channel_id: '20' },
      { op: 'get', user_id: uA2, channel_id: '404' },
    ];
    const r = await viaAll('POST', '/v1/batch', { ops });
    expect(r.status).toBe(200);
    expect((r.body as { results: { status: number }[] }).results.map((x) => x.status)).toEqual([200, 200, 200, 404]);
  });

  it('a forwarded batch serves what it owns and refuses the rest', async () => {
    const ops = [
      { op: 'get', user_id: uA, channel_id: '20' },
      { op: 'ack', user_id: uB, channel_id: '40', message_id: '1' },
    ];
    const r = await req('a', 'POST', '/v1/batch', { ops }, { 'read-states-forwarded-by': 'c' });
    const results = (r.body as { results: Record<string, unknown>[] }).results;
    expect(results[0]).toMatchObject({ status: 200, read_state: { user_id: uA } });
    expect(results[1]).toEqual({ status: 503, error: 'PARTITION_UNAVAILABLE', applied: false });
    expect((await req('b', 'GET', `/v1/users/${uB}/read-states/40`)).status).toBe(404);
  });

  it("a sub-batch whose owner fails: its ops say whether they may have been applied", async () => {
    const ops = [
      { op: 'ack', user_id: uX, channel_id: '1', message_id: '1' },
      { op: 'get', user_id: uA, channel_id: '20' },
    ];
    cluster.setUrl('d', await closedPortUrl());
    cluster.assign(UNOWNED, 'd', 1);
    try {
      const down = (await req('b', 'POST', '/v1/batch', { ops })).body as { results: Record<string, unknown>[] };
      expect(down.results[0]).toEqual({ status: 503, error: 'PARTITION_UNAVAILABLE', applied: false });
      expect(down.results[1]).toMatchObject({ status: 200, read_state: { user_id: uA } });
    } finally {
      cluster.assign(UNOWNED, null, 0);
    }
    const stub = await startStub(() => {
      // never answers
    });
    cluster.setUrl('e', stub.url);
    cluster.assign(UNOWNED, 'e', 1);
    try {
      const hung = (await req('b', 'POST', '/v1/batch', { ops })).body as { results: Record<string, unknown>[] };
      expect(hung.results[0]).toEqual({ status: 503, error: 'FORWARD_FAILED', applied: null });
      expect(hung.results[1]).toMatchObject({ status: 200, read_state: { user_id: uA } });
      // the sub-batch holds only the owner's ops, as they were sent
      expect(stub.requests[0].body).toEqual({ ops: [ops[0]] });
      expect(stub.requests[0].headers['read-states-forwarded-by']).toBe('b');
    } finally {
      cluster.assign(UNOWNED, null, 0);
      await stub.close();
    }
  });

  it("an owner's refusal of the whole sub-batch becomes each op's result; an answer not ours, FORWARD_FAILED", async () => {
    let answer: { status: number; text: string } = { status: 503, text: JSON.stringify({ error: 'SHARD_OVERLOADED', message: 'full', applied: false }) };
    const stub = await startStub((_r, res) => {
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(answer.text);
    });
    cluster.setUrl('d', stub.url);
    cluster.assign(UNOWNED, 'd', 1);
    const ops = [
      { op: 'get', user_id: uA, channel_id: '20' },
      { op: 'ack', user_id: uX, channel_id: '1', message_id: '1' },
      { op: 'get', user_id: uX, channel_id: '2' },
    ];
    try {
      const refused = ((await req('a', 'POST', '/v1/batch', { ops })).body as { results: Record<string, unknown>[] }).results;
      expect(refused[0]).toMatchObject({ status: 200 });
      expect(refused.slice(1)).toEqual([
        { status: 503, error: 'SHARD_OVERLOADED', applied: false },
        { status: 503, error: 'SHARD_OVERLOADED', applied: false },
      ]);
      answer = { status: 200, text: 'not json' };
      const odd = ((await req('a', 'POST', '/v1/batch', { ops })).body as { results: Record<string, unknown>[] }).results;
      expect(odd.slice(1)).toEqual([
        { status: 503, error: 'FORWARD_FAILED', applied: null },
        { status: 503, error: 'FORWARD_FAILED', applied: null },
      ]);
    } finally {
      cluster.assign(UNOWNED, null, 0);
      await stub.close();
    }
  });
});

describe('POST /v1/channels/:channel_id/mentions', () => {
  it('splits the users over their owners and adds up the answers', async () => {
    const r = await req('a', 'POST', '/v1/channels/77/mentions', { message_id: '700', user_ids: [uA, uB, uC, uA2, uB], count: 2 });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ updated: 4 });
    for (const [id, user] of [
      ['a', uA],
      ['b', uB],
      ['c', uC],
      ['a', uA2],
    ] as const) {
      expect((await req(id, 'GET', `/v1/users/${user}/read-states/77`)).body).toMatchObject({ mention_count: 2 });
    }
    // users who read past the message do not change, wherever the request arrives
    await req('b', 'POST', `/v1/users/${uB}/read-states/77/ack`, { message_id: '800', mention_count: 0 });
    await req('c', 'POST', `/v1/users/${uC}/read-states/77/ack`, { message_id: '800', mention_count: 0 });
    expect((await viaAll('POST', '/v1/channels/77/mentions', { message_id: '750', user_ids: [uC, uB] })).body).toEqual({ updated: 0 });
  });

  it('refuses the whole request, before applying anything, when a user has no owner', async () => {
    const r = await req('b', 'POST', '/v1/channels/78/mentions', { message_id: '1', user_ids: [uA, uB, uX] });
    expectRefused(r, 'PARTITION_UNAVAILABLE', false);
    expect((await req('a', 'GET', `/v1/users/${uA}/read-states/78`)).status).toBe(404);
    expect((await req('b', 'GET', `/v1/users/${uB}/read-states/78`)).status).toBe(404);
    const hop = await req('b', 'POST', '/v1/channels/78/mentions', { message_id: '1', user_ids: [uA, uB] }, { 'read-states-forwarded-by': 'a' });
    expectRefused(hop, 'PARTITION_UNAVAILABLE', false);
    expect((await req('b', 'GET', `/v1/users/${uB}/read-states/78`)).status).toBe(404);
  });

  it('a part that fails fails the request, as may have been applied when another part was', async () => {
    cluster.setUrl('d', await closedPortUrl());
    cluster.assign(UNOWNED, 'd', 1);
    try {
      expectRefused(await req('a', 'POST', '/v1/channels/79/mentions', { message_id: '1', user_ids: [uA, uX] }), 'PARTITION_UNAVAILABLE', null);
      expect((await req('a', 'GET', `/v1/users/${uA}/read-states/79`)).body).toMatchObject({ mention_count: 1 });
      // only the unreachable owner's users: nothing was applied
      expectRefused(await req('a', 'POST', '/v1/channels/79/mentions', { message_id: '2', user_ids: [uX] }), 'PARTITION_UNAVAILABLE', false);
    } finally {
      cluster.assign(UNOWNED, null, 0);
    }
  });
});

describe('a lease that ends between apply and answer', () => {
  it('turns the success into LEASE_LOST, applied null', async () => {
    const before = view('a').counters.leaseLostAnswers;
    view('a').endLeaseAtNextAnswer();
    try {
      const r = await req('a', 'POST', `/v1/users/${uA}/read-states/50/ack`, { message_id: '500' });
      expectRefused(r, 'LEASE_LOST', null);
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(view('a').counters.leaseLostAnswers).toBe(before + 1);
      // without the lease nothing more is served here
      expectRefused(await req('a', 'GET', `/v1/users/${uA}/read-states/50`), 'PARTITION_UNAVAILABLE', false);
    } finally {
      view('a').leaseEnded = false;
    }
    // it had been applied: LEASE_LOST says it may have been
    expect((await req('a', 'GET', `/v1/users/${uA}/read-states/50`)).body).toMatchObject({ last_message_id: '500' });
  });

  it('a partition lost and taken back before the answer (a newer epoch) is LEASE_LOST too', async () => {
    view('a').retakeBeforeNextAnswer();
    const r = await req('a', 'POST', `/v1/users/${uA}/read-states/57/ack`, { message_id: '570' });
    expectRefused(r, 'LEASE_LOST', null);
    // served again under the new epoch
    const again = await req('a', 'POST', `/v1/users/${uA}/read-states/57/ack`, { message_id: '571' });
    expect(again.status).toBe(200);
    const epoch = Number(again.headers.get('read-states-owner')!.split(' ')[2]);
    // only a success says when it was let go (a pause after that delays it, it was decided then)
    expect(r.headers.get('read-states-answered-at')).toBeNull();
    expect(Math.abs(Number(again.headers.get('read-states-answered-at')) - Date.now())).toBeLessThan(10_000);
    const before = Number(r.headers.get('read-states-owner')!.split(' ')[2]);
    expect(epoch).toBe(before + 2);
    // back to the epoch the other tests expect
    const p = Number(again.headers.get('read-states-owner')!.split(' ')[1]);
    view('a').epochs[p] = before;
  });

  it('reaches the caller unchanged through a forwarding instance', async () => {
    view('a').endLeaseAtNextAnswer();
    try {
      const r = await req('c', 'POST', `/v1/users/${uA}/read-states/51/ack`, { message_id: '510' });
      expectRefused(r, 'LEASE_LOST', null);
      expect(r.headers.get('read-states-owner')).toBe(ownerHeader(0));
    } finally {
      view('a').leaseEnded = false;
    }
  });

  it('in a batch: the local ops get LEASE_LOST, the other owners\' results stand', async () => {
    const ops = [
      { op: 'ack', user_id: uA, channel_id: '52', message_id: '520' },
      { op: 'ack', user_id: uB, channel_id: '52', message_id: '521' },
      { op: 'get', user_id: uA2, channel_id: '404' },
    ];
    view('a').endLeaseAtNextAnswer();
    try {
      const results = ((await req('a', 'POST', '/v1/batch', { ops })).body as { results: Record<string, unknown>[] }).results;
      expect(results[0]).toEqual({ status: 503, error: 'LEASE_LOST', applied: null });
      expect(results[1]).toMatchObject({ status: 200, read_state: { user_id: uB, last_message_id: '521' } });
      // a 404 says something about the data too: from a copy no longer owned it may be stale
      expect(results[2]).toEqual({ status: 503, error: 'LEASE_LOST', applied: null });
    } finally {
      view('a').leaseEnded = false;
    }
  });

  it('in a mentions fan-out: the request fails as may have been applied', async () => {
    view('b').endLeaseAtNextAnswer();
    try {
      expectRefused(await req('b', 'POST', '/v1/channels/53/mentions', { message_id: '1', user_ids: [uB, uC] }), 'LEASE_LOST', null);
    } finally {
      view('b').leaseEnded = false;
    }
  });
});

describe('a single instance (no cluster view)', () => {
  let single: RunningService;
  beforeAll(async () => {
    single = await startService();
  });
  afterAll(async () => {
    await single.close();
  });

  it('answers without the owner header', async () => {
    const ack = await call(single.url, 'POST', `/v1/users/${uX}/read-states/1/ack`, { message_id: '5' });
    expect(ack.status).toBe(200);
    expect(ack.headers.get('read-states-owner')).toBeNull();
    const get = await call(single.url, 'GET', `/v1/users/${uX}/read-states`, undefined, { 'read-states-forwarded-by': 'a' });
    expect(get.status).toBe(200);
    expect(get.headers.get('read-states-owner')).toBeNull();
    const batch = await call(single.url, 'POST', '/v1/batch', {
      ops: [
        { op: 'get', user_id: uX, channel_id: '1' },
        { op: 'summary', user_id: uX },
        { op: 'get', user_id: uX, channel_id: '2' },
        { op: 'delete', user_id: uX, channel_id: '1' },
      ],
    });
    expect(batch.headers.get('read-states-owner')).toBeNull();
    const results = (batch.body as { results: Record<string, unknown>[] }).results;
    expect(results[0]).toEqual({ status: 200, read_state: ack.body });
    expect(results[1]).toMatchObject({ status: 200, summary: { user_id: uX, read_states: 1 } });
    expect(results[2]).toEqual({ status: 404, error: 'NOT_FOUND' });
    expect(results[3]).toEqual({ status: 204 });
  });
});
