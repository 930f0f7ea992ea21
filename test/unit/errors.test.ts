import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../../src/errors.js';

describe('error codes', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it.each(Object.entries(ERRORS))('%s is machine-readable and documented in README', (code, def) => {
    expect(code).toMatch(/^[A-Z][A-Z0-9_]*$/);
    expect(def.status).toBeGreaterThanOrEqual(400);
    expect(readme).toMatch(new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${def.status}\\s*\\|`));
  });
});
