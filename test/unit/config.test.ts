import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, defaultShards, loadConfig, loggableConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('has sane defaults', () => {
    const c = loadConfig([], {});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(3000);
    expect(c.shards).toBe(defaultShards());
    expect(c.shards).toBeGreaterThanOrEqual(1);
    expect(c.capacity).toBe(5_000_000);
    expect(c.maxUsers).toBe(1_250_000);
    expect(c.authTokenFile).toBeUndefined();
    expect(c.authToken).toBeUndefined();
  });

  it('reads flags before environment variables', () => {
    const c = loadConfig(['--port', '4000', '--shards=3'], { READ_STATES_PORT: '5000', READ_STATES_CAPACITY: '1000' });
    expect(c.port).toBe(4000);
    expect(c.shards).toBe(3);
    expect(c.capacity).toBe(1000);
    expect(c.maxUsers).toBe(250);
  });

  it.each([
    [['--port', '70000'], /--port must be an integer from 0 to 65535/],
    [['--shards', '0'], /--shards must be an integer from 1/],
    [['--capacity', 'ten'], /--capacity must be a non-negative integer/],
    [['--capacity=-5'], /--capacity must be a non-negative integer/],
    [['--bogus', '1'], /bogus/],
    [['--log-level', 'loud'], /--log-level must be one of/],
    [['--capacity', '2', '--shards', '4'], /--capacity must be at least --shards/],
  ])('rejects %j', (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it('validates environment variables too', () => {
    expect(() => loadConfig([], { READ_STATES_MAX_QUEUE: '0' })).toThrow(/--max-queue/);
  });
});

describe('--auth-token-file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rs-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('reads the token, trimmed, from the flag or READ_STATES_AUTH_TOKEN_FILE', () => {
    const p = file('token', '  abc.DEF-123\n');
    expect(loadConfig(['--auth-token-file', p], {}).authToken).toBe('abc.DEF-123');
    const c = loadConfig([], { READ_STATES_AUTH_TOKEN_FILE: p });
    expect(c.authTokenFile).toBe(p);
    expect(c.authToken).toBe('abc.DEF-123');
  });

  it.each([
    ['a missing file', () => join(dir, 'absent'), /--auth-token-file .*absent cannot be read: ENOENT/],
    ['a directory', () => dir, /--auth-token-file .* cannot be read: EISDIR/],
    ['an empty file', () => file('empty', ''), /is empty: it must hold the bearer token/],
    ['a file of whitespace', () => file('blank', ' \n\t \n'), /is empty/],
    ['two tokens', () => file('two', 'abc def\n'), /must hold one token of visible ASCII characters/],
    ['two lines', () => file('lines', 'abc\ndef\n'), /must hold one token/],
    ['an empty path', () => '', /--auth-token-file must not be empty/],
  ])('rejects %s', (_what, path, message) => {
    const argv = ['--auth-token-file', path()];
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it('never shows the token in the loggable config', () => {
    const c = loadConfig(['--auth-token-file', file('t2', 'very-secret')], {});
    expect(JSON.stringify(loggableConfig(c))).not.toContain('very-secret');
    expect(loggableConfig(c).authTokenFile).toBe(c.authTokenFile);
    expect(JSON.stringify(loggableConfig(loadConfig([], {})))).not.toContain('authToken"');
  });
});

describe('journal flags', () => {
  it('defaults: journal on, no fsync, 10 s segments, 10,000 read states per user', () => {
    const c = loadConfig([], {});
    expect([c.journal, c.journalFsyncMs, c.journalSegmentMs, c.maxReadStatesPerUser]).toEqual([true, null, 10_000, 10_000]);
  });

  it('reads --journal, --journal-fsync-ms (0 is fsync per answer), and rejects bad values', () => {
    expect(loadConfig(['--journal', 'off'], {}).journal).toBe(false);
    expect(loadConfig([], { READ_STATES_JOURNAL: 'off' }).journal).toBe(false);
    expect(loadConfig(['--journal-fsync-ms', '0'], {}).journalFsyncMs).toBe(0);
    expect(loadConfig(['--journal-fsync-ms', '5'], {}).journalFsyncMs).toBe(5);
    expect(() => loadConfig(['--journal', 'maybe'], {})).toThrow(/--journal must be on or off/);
    expect(() => loadConfig(['--journal-fsync-ms', '-1'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--journal-segment-ms', '5'], {})).toThrow(/--journal-segment-ms/);
    expect(() => loadConfig(['--max-read-states-per-user', '0'], {})).toThrow(/--max-read-states-per-user/);
  });
});

describe('cluster flags', () => {
  const base = ['--store', 'cassandra', '--cluster', 'prod-1'];

  it('is off by default, and its flags are refused without --cluster', () => {
    expect(loadConfig([], {}).cluster).toBeNull();
    expect(() => loadConfig(['--partitions', '64'], {})).toThrow(/--partitions only applies with --cluster/);
    expect(() => loadConfig(['--advertise-url', 'http://a:1'], {})).toThrow(/only applies with --cluster/);
  });

  it('defaults: advertised as http://host:port, 1024 partitions, 10 s leases, a random id, journal off, 1 s flush delay', () => {
    const c = loadConfig([...base, '--port', '3100'], {});
    expect(c.cluster).toMatchObject({ name: 'prod-1', advertiseUrl: 'http://127.0.0.1:3100', partitions: 1024, leaseMs: 10_000 });
    expect(c.cluster!.instanceId).toMatch(/^127\.0\.0\.1:3100-[0-9a-f]{8}$/);
    expect(loadConfig([...base], {}).cluster!.instanceId).not.toBe(c.cluster!.instanceId);
    expect([c.journal, c.flushDelayMs]).toEqual([false, 1000]);
    expect(loadConfig([...base, '--flush-delay', '250'], {}).flushDelayMs).toBe(250);
  });

  it('reads every flag and the environment', () => {
    const c = loadConfig([...base, '--advertise-url', 'http://10.0.0.5:3000', '--partitions', '64', '--lease-ms', '3000', '--instance-id', 'node-a'], {});
    expect(c.cluster).toEqual({ name: 'prod-1', advertiseUrl: 'http://10.0.0.5:3000', partitions: 64, leaseMs: 3000, instanceId: 'node-a' });
    expect(loadConfig([], { READ_STATES_STORE: 'cassandra', READ_STATES_CLUSTER: 'x', READ_STATES_LEASE_MS: '2000' }).cluster?.leaseMs).toBe(2000);
  });

  it('refuses what cannot work, saying why', () => {
    expect(() => loadConfig(['--cluster', 'a'], {})).toThrow(/--cluster needs --store cassandra/);
    expect(() => loadConfig([...base, '--journal', 'on'], {})).toThrow(/--journal on is not supported with --cluster/);
    expect(() => loadConfig([...base, '--host', '0.0.0.0'], {})).toThrow(/needs --advertise-url/);
    expect(() => loadConfig([...base, '--advertise-url', 'https://a:1'], {})).toThrow(/--advertise-url must be/);
    expect(() => loadConfig([...base, '--advertise-url', 'http://a:1/path'], {})).toThrow(/no path/);
    expect(() => loadConfig([...base, '--lease-ms', '500'], {})).toThrow(/--lease-ms/);
    expect(() => loadConfig([...base, '--partitions', '0'], {})).toThrow(/--partitions/);
    expect(() => loadConfig(['--store', 'cassandra', '--cluster', 'bad name'], {})).toThrow(/--cluster must be/);
    expect(() => loadConfig([...base, '--instance-id', 'a b'], {})).toThrow(/--instance-id/);
  });
});
