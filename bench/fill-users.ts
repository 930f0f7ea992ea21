/**
 * Filling a service through its API as a client would: users of 10 channels each, created by
 * acks in /v1/batch requests of `batchUsers` users, two requests in flight. Every user of a
 * batch is new, so every one is a miss: this is also how fast the service takes users it has
 * never seen (bench:cold-users).
 */
import type { Server } from './harness/servers.js';

export const CHANNELS_PER_USER = 10;

export function userId(k: number): string {
  return String(1_000_000_000 + k);
}

export function fillBody(firstUser: number, users: number): string {
  const ops: string[] = [];
  for (let k = firstUser; k < firstUser + users; k++) {
    const u = userId(k);
    for (let c = 0; c < CHANNELS_PER_USER; c++) ops.push(`{"op":"ack","user_id":"${u}","channel_id":"${2_000_000 + c * 7919 + (k % 1000)}","message_id":"${k + 1}"}`);
  }
  return `{"ops":[${ops.join(',')}]}`;
}

/** Fills users 0..users-1; `progress` is called every ~10 s with read states so far. Returns seconds. */
export async function fillUsers(server: Server, users: number, batchUsers: number, progress: (readStates: number, seconds: number) => void): Promise<number> {
  const t0 = Date.now();
  let next = 0;
  let lastPrint = t0;
  const worker = async (): Promise<void> => {
    while (next < users) {
      const first = next;
      const n = Math.min(batchUsers, users - first);
      next += n;
      const res = await fetch(server.url + '/v1/batch', { method: 'POST', headers: { 'content-type': 'application/json' }, body: fillBody(first, n) });
      const text = await res.text();
      if (res.status !== 200 || text.includes('"status":5')) throw new Error(`fill refused (${res.status}): ${text.slice(0, 300)}`);
      if (Date.now() - lastPrint > 10_000) {
        lastPrint = Date.now();
        progress(next * CHANNELS_PER_USER, (lastPrint - t0) / 1000);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  return (Date.now() - t0) / 1000;
}
