import { describe, expect, it } from 'vitest';
import { ConfigError, defaultShards, loadConfig } from '../../src/config.js';

describe('loadConfig', () => {
  it('has sane defaults', () => {
    const c = loadConfig([], {});
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(3000);
    expect(c.shards).toBe(defaultShards());
    expect(c.shards).toBeGreaterThanOrEqual(1);
    expect(c.capacity).toBe(5_000_000);
    expect(c.maxUsers).toBe(1_250_000);
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
