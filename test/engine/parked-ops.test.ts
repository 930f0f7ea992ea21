/** ParkedOps (per-user FIFO chains of parked operations) against a Map of arrays. */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { ParkedOps } from '../../workers/parked-ops.js';
import { OpWord } from '../../workers/protocol.js';

function chain(q: ParkedOps, u: number): number[] {
  const out: number[] = [];
  for (let e = q.first(u); e !== 0; e = q.after(e)) {
    const at = q.offsetOf(e);
    // every word of the op came through, not only the ticket
    for (let j = 0; j < OpWord.Size; j++) if (j !== OpWord.Ticket) expect(q.buffer[at + j]).toBe((q.buffer[at + OpWord.Ticket] * 31 + j) >>> 0);
    out.push(q.buffer[at + OpWord.Ticket]);
  }
  return out;
}

it('parks and replays in arrival order per user, reusing freed entries, against a model', () => {
  const cmd = fc.oneof(fc.record({ push: fc.nat({ max: 7 }) }), fc.record({ drop: fc.nat({ max: 7 }) }));
  fc.assert(
    fc.property(fc.array(cmd, { maxLength: 400 }), (cmds) => {
      const q = new ParkedOps(8);
      const model = new Map<number, number[]>();
      const op = new Uint32Array(OpWord.Size);
      let ticket = 0;
      for (const c of cmds) {
        if ('push' in c) {
          ticket++;
          for (let j = 0; j < OpWord.Size; j++) op[j] = (ticket * 31 + j) >>> 0;
          op[OpWord.Ticket] = ticket;
          q.push(c.push, op, 0);
          model.set(c.push, [...(model.get(c.push) ?? []), ticket]);
        } else {
          expect(chain(q, c.drop)).toEqual(model.get(c.drop) ?? []);
          q.drop(c.drop);
          model.delete(c.drop);
        }
        expect(q.count).toBe([...model.values()].reduce((a, l) => a + l.length, 0));
      }
      for (let u = 0; u < 8; u++) expect(chain(q, u)).toEqual(model.get(u) ?? []);
    }),
    { seed: 7, numRuns: 300 },
  );
});
