/**
 * Restart with SIGTERM while a client writes throughout: after the restart every change the
 * service answered 200 for must be there. The client keeps its own record: the highest message
 * id acknowledged per read state (acks only move forward), and the mentions acknowledged since.
 */
import { expect } from 'vitest';
import { ChildService } from '../support/child-service.js';

interface Acked {
  message: number;
  /** mentions acknowledged after the last acknowledged ack, and those sent but not answered */
  mentionsAcked: number;
  mentionsUnknown: number;
  messageUnknown: number;
}

export async function restartUnderLoad(svc: ChildService, label: string): Promise<void> {
  await svc.start();
  const users = 40;
  const channels = 5;
  const acked = new Map<string, Acked>();
  for (let u = 1; u <= users; u++) for (let c = 1; c <= channels; c++) acked.set(`${u}/${c}`, { message: 0, mentionsAcked: 0, mentionsUnknown: 0, messageUnknown: 0 });
  let stop = false;
  let ok = 0;
  // Each worker owns a slice of the read states, so its own record is exact.
  const worker = async (w: number): Promise<void> => {
    let msg = 0;
    while (!stop) {
      for (let u = 1 + w; u <= users && !stop; u += 8) {
        for (let c = 1; c <= channels && !stop; c++) {
          const key = `${u}/${c}`;
          const rec = acked.get(key)!;
          const isAck = (msg + u + c) % 3 === 0;
          msg++;
          const message = rec.message + rec.messageUnknown + 1;
          try {
            const res = await fetch(`${svc.url}/v1/users/${u}/read-states/${c}/${isAck ? 'ack' : 'mentions'}`, {
              method: 'POST',
              headers: { 'content-type': 'application/json' },
              body: JSON.stringify(isAck ? { message_id: String(message) } : {}),
            });
            await res.text();
            if (res.status === 200) {
              ok++;
              if (isAck) {
                rec.message = message;
                rec.messageUnknown = 0;
                rec.mentionsAcked = 0;
                rec.mentionsUnknown = 0;
              } else rec.mentionsAcked++;
            } else if (isAck) rec.messageUnknown++;
            else rec.mentionsUnknown++;
          } catch {
            if (isAck) rec.messageUnknown++;
            else rec.mentionsUnknown++;
            await new Promise((r) => setTimeout(r, 10));
          }
        }
      }
    }
  };
  const workers = Array.from({ length: 8 }, (_, w) => worker(w));
  // Let the load run for a while (a loaded machine is slow: wait for a number of acks, not a time).
  const until = Date.now() + 20_000;
  while (ok < 300 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
  const code = await svc.stop('SIGTERM');
  stop = true;
  await Promise.all(workers);
  expect(code, svc.output).toBe(0);
  expect(svc.output).toContain('every change is in the store');
  expect(ok).toBeGreaterThan(200);
  await svc.start();
  let checked = 0;
  for (const [key, rec] of acked) {
    const res = await fetch(`${svc.url}/v1/users/${key.replace('/', '/read-states/')}`);
    if (rec.message === 0 && rec.mentionsAcked === 0) continue;
    expect(res.status, `${label} ${key}`).toBe(200);
    const rs = (await res.json()) as { last_message_id: string; mention_count: number };
    const last = Number(rs.last_message_id);
    // every acknowledged ack is there; at most the unanswered ones beyond it
    expect(last, `${label} ${key} last_message_id`).toBeGreaterThanOrEqual(rec.message);
    expect(last).toBeLessThanOrEqual(rec.message + rec.messageUnknown);
    if (last === rec.message) {
      expect(rs.mention_count, `${label} ${key} mentions`).toBeGreaterThanOrEqual(rec.mentionsAcked);
      expect(rs.mention_count).toBeLessThanOrEqual(rec.mentionsAcked + rec.mentionsUnknown);
    }
    checked++;
  }
  expect(checked).toBeGreaterThan(100);
  expect(await svc.stop('SIGTERM')).toBe(0);
}
