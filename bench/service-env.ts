/**
 * The environment the benches start the service with: what `npm start` gives it (package.json's
 * start script, read here so the two cannot drift apart). The script sets glibc's
 * MALLOC_MMAP_THRESHOLD_ unless the caller has: a fixed threshold keeps every large buffer
 * (a batch's ops, replies, store messages) in its own mapping, returned to the system when
 * freed. With glibc's default, the threshold rises to the largest such buffer freed, later ones
 * come from the threads' heaps, and a fill leaves those heaps holding memory it no longer uses.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './common.js';

const VAR = 'MALLOC_MMAP_THRESHOLD_';

function npmStartDefault(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const m = new RegExp(`${VAR}=\\$\\{${VAR}:-(\\d+)\\}`).exec(pkg.scripts.start ?? '');
  if (m === null) throw new Error(`package.json's start script no longer sets ${VAR}: update bench/service-env.ts`);
  return m[1];
}

export function serviceEnv(): NodeJS.ProcessEnv {
  return { ...process.env, [VAR]: process.env[VAR] ?? npmStartDefault() };
}
