/**
 * Several instances of the built service on one machine, each a child process with its own port and
 * data dir, over one Cassandra keyspace (--cluster mode), for failover tests: start, stop (SIGTERM),
 * kill (SIGKILL), pause (SIGSTOP) and resume (SIGCONT) any of them, and read what each one says
 * about the cluster (GET /v1/cluster).
 *
 * Every start gets an --instance-id of its own (`<name>-<start>-<hex>`), so that the
 * `read-states-owner` header of an answer names the process start that acknowledged it: a restarted
 * instance is a new member with new epochs, and a test can tell its acknowledgements from those of
 * its previous life.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildService, freePort, stopAllChildren } from './child-service.js';
import type { ClusterState as ClientClusterState, PartitionOwner } from '../../client/types.js';

export type { ClusterMember, PartitionOwner } from '../../client/types.js';

/** GET /v1/cluster in cluster mode: every field present (the client's type allows a single instance's `{"cluster": null}`). */
export type ClusterState = Required<ClientClusterState>;

export interface HarnessOptions {
  keyspace: string;
  cassandraPort: number;
  /** cluster name; null runs the instances without --cluster (single-instance mode, to test the harness) */
  cluster: string | null;
  partitions?: number;
  leaseMs?: number;
  flushDelayMs?: number;
  /** more flags for every instance */
  extraArgs?: string[];
}

/** starting: the process runs but is not ready yet (tests send it nothing, as a load balancer would) */
export type InstanceState = 'new' | 'starting' | 'running' | 'paused' | 'stopped' | 'killed';

export class ClusterInstance {
  state: InstanceState = 'new';
  /** the --instance-id of the current (or last) process start */
  instanceId = '';
  /** every instance id this instance has had, one per start */
  readonly instanceIds: string[] = [];
  private svc: ChildService | undefined;
  /** output of earlier process starts (each start's ChildService has its own) */
  private earlierOutput = '';

  constructor(
    readonly name: string,
    readonly port: number,
    readonly dataDir: string,
    private readonly argsFor: (instanceId: string) => string[],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.svc?.pid;
  }

  /** stdout and stderr of every start so far */
  get output(): string {
    return this.earlierOutput + (this.svc?.output ?? '');
  }

  /** Starts a new process (a new instance id) and waits for /ready 200, i.e. for a valid member lease. */
  async start(timeoutMs = 120_000): Promise<void> {
    if (this.state === 'running' || this.state === 'paused' || this.state === 'starting') throw new Error(`${this.name} is already ${this.state}`);
    this.earlierOutput += this.svc?.output ?? '';
    this.instanceId = `${this.name}-${this.instanceIds.length + 1}-${randomBytes(3).toString('hex')}`;
    this.instanceIds.push(this.instanceId);
    this.svc = new ChildService(this.port, this.argsFor(this.instanceId));
    this.state = 'starting';
    try {
      await this.svc.start(timeoutMs);
      this.state = 'running';
    } catch (err) {
      this.state = 'stopped';
      throw err;
    }
  }

  /** SIGTERM (a graceful stop: hands its partitions over, flushes) and waits for the exit code. */
  async stop(timeoutMs = 90_000): Promise<number | null> {
    const svc = this.requireProcess();
    if (this.state === 'paused') this.signal('SIGCONT');
    this.state = 'stopped';
    return svc.stop('SIGTERM', timeoutMs);
  }

  /** SIGKILL: nothing is handed over or flushed. */
  async kill(): Promise<void> {
    const svc = this.requireProcess();
    this.state = 'killed';
    await svc.stop('SIGKILL', 10_000);
  }

  /** SIGSTOP: the process stays, its clocks run on, but it does nothing (a long GC pause, a frozen VM). */
  pause(): void {
    if (this.state !== 'running') throw new Error(`${this.name} is ${this.state}, cannot pause`);
    this.signal('SIGSTOP');
    this.state = 'paused';
  }

  resume(): void {
    if (this.state !== 'paused') throw new Error(`${this.name} is ${this.state}, cannot resume`);
    this.signal('SIGCONT');
    this.state = 'running';
  }

  /** GET /v1/cluster, or undefined if the instance does not answer within timeoutMs. */
  async cluster(timeoutMs = 2000): Promise<ClusterState | undefined> {
    try {
      const res = await fetch(`${this.url}/v1/cluster`, { signal: AbortSignal.timeout(timeoutMs) });
      if (res.status !== 200) return undefined;
      return (await res.json()) as ClusterState;
    } catch {
      return undefined;
    }
  }

  async ready(timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await fetch(`${this.url}/ready`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined) throw new Error(`${this.name} has no process`);
    process.kill(pid, sig);
  }

  private requireProcess(): ChildService {
    if (this.svc === undefined || (this.state !== 'running' && this.state !== 'paused')) throw new Error(`${this.name} is ${this.state}`);
    return this.svc;
  }
}

export class ClusterHarness {
  readonly instances: ClusterInstance[] = [];
  readonly partitions: number;
  readonly leaseMs: number;
  readonly flushDelayMs: number;
  private readonly dirs: string[] = [];

  constructor(private readonly o: HarnessOptions) {
    this.partitions = o.partitions ?? 64;
    this.leaseMs = o.leaseMs ?? 3000;
    this.flushDelayMs = o.flushDelayMs ?? 200;
  }

  /** Adds n instances (free ports, fresh data dirs) without starting them. */
  async add(n: number): Promise<ClusterInstance[]> {
    const added: ClusterInstance[] = [];
    for (let i = 0; i < n; i++) {
      const name = `i${this.instances.length}`;
      const dir = mkdtempSync(join(tmpdir(), `rs-cluster-${name}-`));
      this.dirs.push(dir);
      const inst = new ClusterInstance(name, await freePort(), dir, (id) => this.args(dir, id));
      this.instances.push(inst);
      added.push(inst);
    }
    return added;
  }

  /** Adds and starts n instances at once (they join the cluster concurrently, as a deploy would). */
  async startNew(n: number): Promise<ClusterInstance[]> {
    const added = await this.add(n);
    await Promise.all(added.map((i) => i.start()));
    return added;
  }

  /** Instances with a process that answers (running, not paused). */
  live(): ClusterInstance[] {
    return this.instances.filter((i) => i.state === 'running');
  }

  /** Which instance (and which of its starts) an instance id names. */
  byInstanceId(id: string): ClusterInstance | undefined {
    return this.instances.find((i) => i.instanceIds.includes(id));
  }

  /**
   * Waits until every live instance is ready and answers GET /v1/cluster with the same owner and
   * epoch for every partition, and every owner is a live instance's current id. With `settledMs`,
   * also until every live instance owns some partition (the assignment spreads partitions over all
   * live members, so until then handovers are still under way) and the owner table has not changed
   * for that long. Resolves to the agreed owner table; on timeout, throws with what each instance
   * said last.
   */
  async waitAllOwned(timeoutMs = 60_000, settledMs = 0): Promise<PartitionOwner[]> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    let stable: { sig: string; since: number } | undefined;
    for (;;) {
      const live = this.live();
      const states = await Promise.all(live.map((i) => i.cluster()));
      const ready = await Promise.all(live.map((i) => i.ready()));
      let why = this.disagreement(live, states, ready);
      if (why === undefined && settledMs > 0) {
        const owners = states[0]!.owners;
        const idle = live.find((i) => !owners.some((o) => o.owner === i.instanceId));
        const sig = owners.map((o) => `${o.owner}@${o.epoch}`).join(',');
        if (idle !== undefined) why = `${idle.name} owns no partition yet`;
        else if (stable === undefined || stable.sig !== sig) {
          stable = { sig, since: Date.now() };
          why = 'owners changed';
        } else if (Date.now() - stable.since < settledMs) why = 'owners not settled yet';
      }
      if (why === undefined) return states[0]!.owners;
      if (why !== 'owners not settled yet' && why !== 'owners changed') stable = undefined;
      last = why;
      if (Date.now() > deadline) throw new Error(`partitions not all owned after ${timeoutMs} ms: ${last}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  private disagreement(live: ClusterInstance[], states: (ClusterState | undefined)[], ready: boolean[]): string | undefined {
    if (live.length === 0) return 'no live instance';
    const liveIds = new Set(live.map((i) => i.instanceId));
    for (let k = 0; k < live.length; k++) {
      const s = states[k];
      if (!ready[k]) return `${live[k]!.name} is not ready`;
      if (s === undefined) return `${live[k]!.name} does not answer GET /v1/cluster`;
      if (s.instance_id !== live[k]!.instanceId) return `${live[k]!.name} says it is ${s.instance_id}, started as ${live[k]!.instanceId}`;
      if (s.owners.length !== this.partitions) return `${live[k]!.name} lists ${s.owners.length} partitions, not ${this.partitions}`;
      for (let p = 0; p < this.partitions; p++) {
        const own = s.owners[p]!;
        if (own.owner === null || !liveIds.has(own.owner)) return `${live[k]!.name}: partition ${p} owner ${own.owner}`;
        const first = states[0]!.owners[p]!;
        if (own.owner !== first.owner || own.epoch !== first.epoch) {
          return `partition ${p}: ${live[0]!.name} says ${first.owner}@${first.epoch}, ${live[k]!.name} says ${own.owner}@${own.epoch}`;
        }
      }
    }
    return undefined;
  }

  /** Stops every instance with a process: SIGTERM all at once, resolves to their exit codes by name. */
  async stopAll(timeoutMs = 90_000): Promise<Record<string, number | null>> {
    const up = this.instances.filter((i) => i.state === 'running' || i.state === 'paused');
    const codes = await Promise.all(up.map((i) => i.stop(timeoutMs)));
    return Object.fromEntries(up.map((i, k) => [i.name, codes[k]!]));
  }

  /** Kills whatever still runs and removes the data dirs (afterEach / afterAll). */
  async dispose(): Promise<void> {
    await Promise.all(
      this.instances.filter((i) => i.state === 'running' || i.state === 'paused').map((i) => i.kill().catch(() => {})),
    );
    // and any process whose start failed half-way
    await stopAllChildren();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  private args(dataDir: string, instanceId: string): string[] {
    const a = [
      '--store', 'cassandra',
      '--cassandra-keyspace', this.o.keyspace,
      '--cassandra-port', String(this.o.cassandraPort),
      '--data-dir', dataDir,
      '--shards', '1',
      '--flush-delay', String(this.flushDelayMs),
      // small slabs: 3 processes on a small CI machine, and a few hundred users per test
      '--capacity', '20000',
      '--max-users', '4000',
    ];
    if (this.o.cluster !== null) {
      a.push('--cluster', this.o.cluster, '--partitions', String(this.partitions), '--lease-ms', String(this.leaseMs), '--instance-id', instanceId);
    }
    return [...a, ...(this.o.extraArgs ?? [])];
  }
}
