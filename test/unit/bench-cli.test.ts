/**
 * `npm run bench` as its users meet it: --help lists every flag it accepts with its default and
 * exits 0; a flag it does not know is one line naming it, exit 2, before anything starts.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BENCH_FLAGS } from '../../bench/harness/run.js';

const run = (...args: string[]) => spawnSync(process.execPath, ['dist/bench/harness/run.js', ...args], { encoding: 'utf8', timeout: 30_000 });

describe('npm run bench command line', () => {
  it('--help lists every flag and exits 0 without running anything', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    for (const { flag } of BENCH_FLAGS) expect(r.stdout).toContain(`--${flag}`);
    expect(r.stdout).not.toContain('filled');
  });

  it('an unknown flag is one line and exit 2', () => {
    const r = run('--resident', '1000', '--duraton', '5');
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe('npm run bench: unknown flag --duraton (--help lists them)');
  });

  it('a bad value names the flag', () => {
    const r = run('--churn', '0.5');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^npm run bench: --churn must be/);
    const s = run('--scenario', 'nope');
    expect(s.status).toBe(2);
    expect(s.stderr.trim()).toBe('npm run bench: --scenario must be one of mentions, connect, mixed, batch, single');
  });
});
