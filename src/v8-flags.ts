/**
 * V8 settings for the service process, imported first by the entry point so they hold before any
 * request is handled (V8 flags are process-wide: the shard and store workers get them too).
 *
 * Allocation-site pretenuring off. V8 watches how many objects from each allocation site survive
 * scavenges and, past a threshold, allocates that site's objects straight in the old generation.
 * On the HTTP thread the sites that trip it are fastify's and node:http's per-request objects: a
 * fill, a closed-loop burst or one slow second keeps enough requests alive across two scavenges,
 * and from then on every request's objects go to old space and only a Mark-Compact frees them.
 * Measured (bench harness, mixed scenario, 750k resident, SQLite, 5,000 req/s open loop, 60 s):
 * 31 Mark-Compacts on the main thread and p99 / p99.9 85 / 175 ms with pretenuring; 11 and
 * 10.5 / 31 ms without. Nothing long-lived is allocated on this thread (the read states live in
 * the shard slabs), so there is nothing for pretenuring to win.
 *
 * Old generation allowed to grow to 6x its live size between Mark-Compacts (V8's default step
 * here is live + 8 MB). The HTTP thread's live heap is small (~17 MB: code, sockets, fastify) and
 * each scavenge promotes a few hundred KB of requests that were in flight, so with the default the
 * thread ran a Mark-Compact every 3-4 s under load, and its concurrent marking competed for the
 * same cores. Measured (same harness, 750k resident, 5,930 req/s open loop, 60 s): 16 Mark-Compacts,
 * p99 / p99.9 / max 31 / 117 / 194 ms by default; 1 and 16 / 39 / 60 ms with 500. The cost is up
 * to ~100 MB more heap on the HTTP thread before it is collected.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-allocation-site-pretenuring');
setFlagsFromString('--heap-growing-percent=500');
