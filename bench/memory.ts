/**
 * Resident memory per cached read state.
 *
 *   node --expose-gc dist/bench/memory.js [--entries 10000000] [--channels 100]
 *        [--impl slab,slab-tight,map,lru,capacity] [--capacity 50000000] [--max-users N]
 *
 * Every implementation runs in its own child process (RSS never shrinks reliably, so measuring
 * two implementations in one process would mix them up):
 *   slab        the real ShardEngine in-process (no HTTP, no worker): allocateShardBuffers +
 *               attachShardMemory + ShardEngine, fed Opcode.Mention ops; every miss is answered with an
 *               empty load, as src/shard-lane.ts does for an unknown user. --max-users defaults to
 *               the service default (capacity / 4).
 *   slab-primed the same, but each batch of users is first touched by one GET (so a miss parks one
 *               op instead of the user's 100): shows what the parked-op buffers of the miss path
 *               leave behind in the malloc heap.
 *   slab-tight  the same as slab with --max-users = the number of users actually cached (a smaller user
 *               index), to show what the user-side tables cost.
 *   map         naive: Map<"user:channel", plain object with the read state's fields>.
 *   lru         naive: lru-cache (max = entries) of the same keys and objects.
 *   capacity    allocateShardBuffers(--capacity, --capacity / 4): does it succeed, and what RSS does
 *               it cost right after allocating (the pages are lazy) and after a small fill.
 * Figures: RSS growth (after a full GC) / entries, and V8 heapUsed before/after.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LRUCache } from 'lru-cache';
import { ShardEngine } from '../workers/engine.js';
import { OpList } from '../workers/op-list.js';
import { H_RS_COUNT, H_USER_COUNT, allocateShardBuffers, attachShardMemory, type ShardMemory } from '../workers/shard-memory.js';
import { EngineDriver, addGet, addMention } from './engine-driver.js';
import {
  chanHi,
  chanLo,
  channelOf,
  describeMachine,
  fmt,
  idString,
  intFlag,
  machine,
  mix32,
  parseFlags,
  strFlag,
  table,
  userHi,
  userLo,
  writeResults,
} from './common.js';

const TARGET_BYTES = 64;
const SELF = fileURLToPath(import.meta.url);

interface Mem {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  /** malloc'ed memory V8 knows of (typed-array backing stores, SharedArrayBuffers included) */
  arrayBuffers: number;
  rssAnon: number;
  rssShmem: number;
  /** resident bytes of the [heap] mapping (glibc's main arena: small mallocs, freed or not) */
  glibcHeapRss: number;
}

function glibcHeapRss(): number {
  try {
    const s = readFileSync('/proc/self/smaps', 'utf8');
    const i = s.indexOf('[heap]');
    if (i < 0) return 0;
    return Number(/Rss:\s+(\d+) kB/.exec(s.slice(i))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g === undefined) throw new Error('run with node --expose-gc');
  g();
  g();
}

function mem(): Mem {
  gc();
  const u = process.memoryUsage();
  let rssAnon = 0;
  let rssShmem = 0;
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    rssAnon = Number(/RssAnon:\s+(\d+)/.exec(s)?.[1] ?? 0) * 1024;
    rssShmem = Number(/RssShmem:\s+(\d+)/.exec(s)?.[1] ?? 0) * 1024;
  } catch {
    /* not Linux */
  }
  return { rss: u.rss, heapUsed: u.heapUsed, heapTotal: u.heapTotal, arrayBuffers: u.arrayBuffers, rssAnon, rssShmem, glibcHeapRss: glibcHeapRss() };
}

function progress(msg: string): void {
  process.stderr.write(`  [${process.argv[3] ?? ''}] ${msg}\n`);
}

export interface ChildResult {
  impl: string;
  entries: number;
  channelsPerUser: number;
  users: number;
  maxUsers?: number;
  before: Mem;
  afterAlloc?: Mem;
  after: Mem;
  bytesPerEntry: number;
  heapBytesPerEntry: number;
  /** RSS growth per read state between the 10% mark and the end of the fill */
  marginal?: { fromEntries: number; mid: Mem; bytesPerEntry: number };
  fillSeconds: number;
  opsPerSecond?: number;
  expected?: Record<string, number>;
  note?: string;
  capacity?: { capacity: number; maxUsers: number; reservedBytes: number; allocMs: number; rssAfterAlloc: number; rssAfterFill: number; filled: number };
}

/** Caches users [from, to) with `channels` read states each (at most `entries` in all) by mentions. */
let primeUsers = false;

function fill(driver: EngineDriver, from: number, to: number, channels: number, entries: number, report: boolean): void {
  const usersPerBatch = Math.max(1, Math.floor(10_000 / channels));
  const ops = new OpList(usersPerBatch * channels);
  let nextReport = Math.ceil((from * channels + 1) / 1_000_000) * 1_000_000;
  for (let k0 = from; k0 < to; k0 += usersPerBatch) {
    ops.clear();
    const end = Math.min(to, k0 + usersPerBatch);
    for (let k = k0; k < end; k++) {
      const uLo = userLo(k);
      const uHi = userHi(k);
      const mine = Math.min(channels, entries - k * channels);
      for (let j = 0; j < mine; j++) {
        const c = channelOf(k, j);
        addMention(ops, uLo, uHi, chanLo(c), chanHi(c));
      }
    }
    if (primeUsers) {
      // One GET per user first: the miss parks a single op, the rest of the user's ops are hits.
      const gets = new OpList(end - k0);
      for (let k = k0; k < end; k++) addGet(gets, userLo(k), userHi(k));
      driver.batch(gets.words, 0, gets.length);
    }
    driver.batch(ops.words, 0, ops.length);
    if (report && end * channels >= nextReport) {
      progress(`${fmt(Math.min(entries, end * channels))} read states`);
      nextReport += 1_000_000;
    }
  }
}

// ---- slab ------------------------------------------------------------------------------------

/** Bytes per slot of the columns sized by `n` (read-state columns or user columns). */
function columnBytes(m: ShardMemory, n: number): { perSlot: number; names: string[] } {
  let perSlot = 0;
  const names: string[] = [];
  for (const [name, v] of Object.entries(m)) {
    if (ArrayBuffer.isView(v) && !(v instanceof DataView) && (v as Uint8Array).length === n && name !== 'chanIndex' && name !== 'userIndex') {
      perSlot += (v as Uint8Array).BYTES_PER_ELEMENT;
      names.push(name);
    }
  }
  return { perSlot, names };
}

function runSlab(entries: number, channels: number, maxUsersFlag: number, tight: boolean): ChildResult {
  const users = Math.ceil(entries / channels);
  const maxUsers = tight ? users : maxUsersFlag > 0 ? maxUsersFlag : Math.ceil(entries / 4);
  const before = mem();
  const buffers = allocateShardBuffers(entries, maxUsers);
  const m = attachShardMemory(buffers);
  const engine = new ShardEngine(m);
  const driver = new EngineDriver(engine);
  const afterAlloc = mem();
  progress(`allocated capacity ${fmt(entries)}, maxUsers ${fmt(maxUsers)}; rss +${fmt((afterAlloc.rss - before.rss) / 1048576, 1)} MiB`);

  const t0 = process.hrtime.bigint();
  // A mid-point sample (after 10% of the fill) separates the fixed costs that arrive with the
  // first batches (V8's young generation growing, code pages) from the cost per read state.
  const midAt = Math.floor(users / 10);
  fill(driver, 0, midAt, channels, entries, true);
  const mid = { entries: m.header[H_RS_COUNT], mem: mem() };
  fill(driver, midAt, users, channels, entries, true);
  const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cached = m.header[H_RS_COUNT];
  if (cached !== entries) throw new Error(`expected ${entries} cached read states, engine has ${cached}`);
  if (engine.counters.evictions !== 0) throw new Error(`unexpected evictions: ${engine.counters.evictions}`);
  const after = mem();

  const rs = columnBytes(m, m.capacity);
  const us = columnBytes(m, m.maxUsers);
  const expected = {
    rsColumnBytesPerSlot: rs.perSlot,
    rsColumns: rs.names.length,
    chanIndexBytes: m.chanIndex.byteLength,
    chanIndexBytesPerEntry: m.chanIndex.byteLength / entries,
    userColumnBytesPerSlot: us.perSlot,
    userIndexBytes: m.userIndex.byteLength,
    cachedUsers: m.header[H_USER_COUNT],
    /** if every touched page is resident: columns up to the high-water mark, whole index tables */
    expectedBytesPerEntry:
      (rs.perSlot * entries + m.chanIndex.byteLength + us.perSlot * m.header[H_USER_COUNT] + m.userIndex.byteLength) / entries,
  };
  return {
    impl: tight ? 'slab-tight' : 'slab',
    entries,
    channelsPerUser: channels,
    users,
    maxUsers,
    before,
    afterAlloc,
    after,
    bytesPerEntry: (after.rss - before.rss) / entries,
    heapBytesPerEntry: (after.heapUsed - before.heapUsed) / entries,
    marginal: { fromEntries: mid.entries, mid: mid.mem, bytesPerEntry: (after.rss - mid.mem.rss) / (entries - mid.entries) },
    fillSeconds,
    opsPerSecond: entries / fillSeconds,
    expected,
  };
}

// ---- naive -----------------------------------------------------------------------------------

/** What a naive JS cache keeps per read state: the API's fields as a plain object. */
interface NaiveReadState {
  user_id: string;
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
  dirty: boolean;
}

function runNaive(kind: 'map' | 'lru', entries: number, channels: number): ChildResult {
  const users = Math.ceil(entries / channels);
  const before = mem();
  const map = kind === 'map' ? new Map<string, NaiveReadState>() : undefined;
  const lru = kind === 'lru' ? new LRUCache<string, NaiveReadState>({ max: entries }) : undefined;
  const afterAlloc = mem();
  const t0 = process.hrtime.bigint();
  let done = 0;
  for (let k = 0; k < users; k++) {
    // One id string per user, shared by its entries; channel and message id strings are distinct
    // objects per entry, as they are when each comes out of a parsed request or store row.
    const userId = idString(userLo(k), userHi(k));
    const mine = Math.min(channels, entries - k * channels);
    for (let j = 0; j < mine; j++) {
      const c = channelOf(k, j);
      const channelId = idString(chanLo(c), chanHi(c));
      const rs: NaiveReadState = {
        user_id: userId,
        channel_id: channelId,
        last_message_id: idString(mix32(done), 0x0f400000 + (done >>> 12)),
        mention_count: 1,
        last_pin_timestamp: 0,
        flags: 0,
        version: 1,
        dirty: true,
      };
      const key = userId + ':' + channelId;
      if (map !== undefined) map.set(key, rs);
      else lru!.set(key, rs);
      done++;
    }
    if (done % 1_000_000 < channels) progress(`${fmt(done)} entries`);
  }
  const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const size = map?.size ?? lru!.size;
  if (size !== entries) throw new Error(`expected ${entries} entries, have ${size}`);
  const after = mem();
  // keep the cache alive until after the measurement
  if ((map?.size ?? lru!.size) < 0) console.log('unreachable');
  return {
    impl: kind,
    entries,
    channelsPerUser: channels,
    users,
    before,
    afterAlloc,
    after,
    bytesPerEntry: (after.rss - before.rss) / entries,
    heapBytesPerEntry: (after.heapUsed - before.heapUsed) / entries,
    fillSeconds,
    opsPerSecond: entries / fillSeconds,
  };
}

// ---- capacity --------------------------------------------------------------------------------

function runCapacity(capacity: number, maxUsersFlag: number, channels: number): ChildResult {
  const maxUsers = maxUsersFlag > 0 ? maxUsersFlag : Math.ceil(capacity / 4);
  const before = mem();
  const t0 = process.hrtime.bigint();
  const buffers = allocateShardBuffers(capacity, maxUsers);
  const allocMs = Number(process.hrtime.bigint() - t0) / 1e6;
  let reserved = 0;
  for (const v of Object.values(buffers)) if (v instanceof SharedArrayBuffer) reserved += v.byteLength;
  const m = attachShardMemory(buffers);
  const engine = new ShardEngine(m);
  const afterAlloc = mem();
  progress(`allocated ${fmt(reserved / 1048576)} MiB of slabs in ${fmt(allocMs, 1)} ms; rss +${fmt((afterAlloc.rss - before.rss) / 1048576, 1)} MiB`);
  // A small fill proves the slabs are usable and shows pages coming in as slots are touched.
  const driver = new EngineDriver(engine);
  const fillUsers = 1000;
  fill(driver, 0, fillUsers, channels, fillUsers * channels, false);
  const filled = m.header[H_RS_COUNT];
  const after = mem();
  return {
    impl: 'capacity',
    entries: filled,
    channelsPerUser: channels,
    users: fillUsers,
    maxUsers,
    before,
    afterAlloc,
    after,
    bytesPerEntry: (after.rss - afterAlloc.rss) / filled,
    heapBytesPerEntry: (after.heapUsed - before.heapUsed) / filled,
    fillSeconds: 0,
    capacity: {
      capacity,
      maxUsers,
      reservedBytes: reserved,
      allocMs,
      rssAfterAlloc: afterAlloc.rss - before.rss,
      rssAfterFill: after.rss - before.rss,
      filled,
    },
  };
}

// ---- orchestration ---------------------------------------------------------------------------

function child(flags: Map<string, string>): void {
  const impl = strFlag(flags, 'child', '');
  const entries = intFlag(flags, 'entries', 10_000_000);
  const channels = intFlag(flags, 'channels', 100);
  const maxUsers = intFlag(flags, 'max-users', 0);
  primeUsers = flags.has('prime-users');
  let r: ChildResult;
  switch (impl) {
    case 'slab':
      r = runSlab(entries, channels, maxUsers, false);
      break;
    case 'slab-tight':
      r = runSlab(entries, channels, maxUsers, true);
      break;
    case 'slab-primed':
      primeUsers = true;
      r = runSlab(entries, channels, maxUsers, false);
      r.impl = 'slab-primed';
      break;
    case 'map':
    case 'lru':
      r = runNaive(impl, entries, channels);
      break;
    case 'capacity':
      r = runCapacity(intFlag(flags, 'capacity', 50_000_000), maxUsers, channels);
      break;
    default:
      throw new Error(`unknown --impl ${impl}`);
  }
  process.stdout.write('RESULT ' + JSON.stringify(r) + '\n');
}

function runChild(impl: string, args: string[], heapMiB: number): Promise<ChildResult> {
  const nodeArgs = ['--expose-gc'];
  if (heapMiB > 0) nodeArgs.push(`--max-old-space-size=${heapMiB}`);
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...nodeArgs, SELF, '--child', impl, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code, signal) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || line === undefined) reject(new Error(`${impl}: exit ${code ?? signal}\n${out}`));
      else resolve(JSON.parse(line.slice(7)) as ChildResult);
    });
  });
}

const MiB = 1048576;

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  if (flags.has('child')) return child(flags);
  const entries = intFlag(flags, 'entries', 10_000_000);
  const channels = intFlag(flags, 'channels', 100);
  const capacity = intFlag(flags, 'capacity', 50_000_000);
  const maxUsers = intFlag(flags, 'max-users', 0);
  const impls = strFlag(flags, 'impl', 'slab,slab-primed,slab-tight,map,lru,capacity').split(',');
  // A naive cache of 10M objects needs far more than V8's default old space.
  const naiveHeap = intFlag(flags, 'naive-heap-mib', 12_288);
  const m0 = machine();
  console.log(describeMachine(m0));
  console.log(`entries ${fmt(entries)}, ${channels} channels per user, impls ${impls.join(',')}\n`);
  const results: ChildResult[] = [];
  for (const impl of impls) {
    const args = ['--entries', String(entries), '--channels', String(channels), '--capacity', String(capacity)];
    if (maxUsers > 0) args.push('--max-users', String(maxUsers));
    const t0 = Date.now();
    const r = await runChild(impl, args, impl === 'map' || impl === 'lru' ? naiveHeap : 0);
    console.log(`${impl}: done in ${fmt((Date.now() - t0) / 1000, 1)} s`);
    results.push(r);
  }
  const m1 = machine();

  const rows = results
    .filter((r) => r.impl !== 'capacity')
    .map((r) => [
      r.impl,
      fmt(r.entries),
      r.maxUsers !== undefined ? fmt(r.maxUsers) : '-',
      fmt((r.after.rss - r.before.rss) / MiB, 1),
      fmt(r.bytesPerEntry, 1),
      `${fmt(r.before.heapUsed / MiB, 1)} -> ${fmt(r.after.heapUsed / MiB, 1)}`,
      fmt(r.heapBytesPerEntry, 1),
      fmt((r.after.glibcHeapRss - r.before.glibcHeapRss) / MiB, 1),
      r.marginal !== undefined ? fmt(r.marginal.bytesPerEntry, 1) : '-',
      r.opsPerSecond !== undefined ? fmt(r.opsPerSecond) : '-',
      r.impl.startsWith('slab') ? (r.bytesPerEntry <= TARGET_BYTES ? 'met' : 'MISSED') : '-',
    ]);
  console.log(
    '\n' +
      table(
        ['impl', 'entries', 'max users', 'RSS growth MiB', 'bytes/entry (RSS)', 'heapUsed MiB before -> after', 'heap bytes/entry', 'malloc [heap] growth MiB', 'marginal bytes/entry (10%->100%)', 'fill ops/s', `<= ${TARGET_BYTES} B`],
        rows,
      ),
  );
  for (const r of results) {
    if (r.expected !== undefined) {
      const e = r.expected;
      console.log(
        `${r.impl}: layout ${e.rsColumnBytesPerSlot} B/slot in ${e.rsColumns} read-state columns + channel index ${fmt(e.chanIndexBytes / MiB, 1)} MiB ` +
          `(${fmt(e.chanIndexBytesPerEntry, 2)} B/entry) + ${e.userColumnBytesPerSlot} B/user x ${fmt(e.cachedUsers)} users + user index ${fmt(e.userIndexBytes / MiB, 1)} MiB` +
          ` = ${fmt(e.expectedBytesPerEntry, 1)} B/entry if every touched page is resident`,
      );
    }
    if (r.capacity !== undefined) {
      const c = r.capacity;
      console.log(
        `capacity ${fmt(c.capacity)} (max users ${fmt(c.maxUsers)}): allocation OK, ${fmt(c.reservedBytes / MiB)} MiB reserved in ${fmt(c.allocMs, 1)} ms; ` +
          `RSS +${fmt(c.rssAfterAlloc / MiB, 1)} MiB right after allocating, +${fmt(c.rssAfterFill / MiB, 1)} MiB after caching ${fmt(c.filled)} read states`,
      );
    }
  }
  const file = writeResults('memory', { bench: 'memory', argv: process.argv.slice(2), machineBefore: m0, machineAfter: m1, targetBytes: TARGET_BYTES, results });
  console.log(`\nload after: ${m1.uptime}\nresults: ${file}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
