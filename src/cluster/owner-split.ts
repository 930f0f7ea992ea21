/**
 * Splits a multi-user request's operations by where they are served (cluster mode): here (this
 * instance owns the partition now), at another owner (by URL), or nowhere (no owner, or the request
 * was forwarded here already and may not go on).
 */
import { OpList } from '../../workers/op-list.js';
import { OpWord } from '../../workers/protocol.js';
import type { ClusterView } from './view.js';

export const enum Place {
  Local = 0,
  Remote = 1,
  Unowned = 2,
}

export class OwnerSplit {
  /** where op i goes (Place) */
  readonly place: Uint8Array;
  /** the partition of op i */
  readonly partition: Uint32Array;
  /** the epoch a local op i was accepted under (ClusterView.mayAnswer) */
  readonly epoch: Float64Array;
  localCount = 0;
  unownedCount = 0;
  /** the ops each other owner serves, by its URL, as indexes into the request in request order */
  readonly remote = new Map<string, number[]>();

  constructor(n: number) {
    this.place = new Uint8Array(n);
    this.partition = new Uint32Array(n);
    this.epoch = new Float64Array(n);
  }

  get allLocal(): boolean {
    return this.localCount === this.place.length;
  }

  /**
   * The local ops as a list of their own, and each one's index in the request. Only for a mixed
   * request: when every op is local the request's list is submitted as is.
   */
  localOps(ops: OpList): { ops: OpList; index: Uint32Array } {
    const out = new OpList(this.localCount);
    const index = new Uint32Array(this.localCount);
    const src = ops.words;
    let j = 0;
    for (let i = 0; i < this.place.length; i++) {
      if (this.place[i] !== Place.Local) continue;
      out.words.set(src.subarray(i * OpWord.Size, (i + 1) * OpWord.Size), j * OpWord.Size);
      index[j++] = i;
    }
    out.length = j;
    return { ops: out, index };
  }
}

/** `forwarded`: the request came from another instance, so nothing of it is sent on again. */
export function splitByOwner(view: ClusterView, ops: OpList, forwarded: boolean): OwnerSplit {
  const n = ops.length;
  const split = new OwnerSplit(n);
  const w = ops.words;
  for (let i = 0; i < n; i++) {
    const p = view.partitionOf(w[i * OpWord.Size + OpWord.UserLo], w[i * OpWord.Size + OpWord.UserHi]);
    split.partition[i] = p;
    if (view.ownsNow(p)) {
      split.epoch[i] = view.epochOf(p);
      split.localCount++;
      continue;
    }
    const url = forwarded ? null : view.ownerUrl(p);
    if (url === null) {
      split.place[i] = Place.Unowned;
      split.unownedCount++;
      continue;
    }
    split.place[i] = Place.Remote;
    const group = split.remote.get(url);
    if (group === undefined) split.remote.set(url, [i]);
    else group.push(i);
  }
  return split;
}
