/** The client's copy of the error codes cannot drift from the server's list. */
import { describe, expect, it } from 'vitest';
import { CLIENT_ERROR_CODES, SERVER_ERROR_CODES, SERVER_ERROR_STATUS } from '../../client/index.js';
import { ERRORS } from '../../src/errors.js';

describe('error codes', () => {
  it("the client's server codes are exactly src/errors.ts ERRORS, with the same statuses", () => {
    expect([...SERVER_ERROR_CODES].sort()).toEqual(Object.keys(ERRORS).sort());
    const statuses = Object.fromEntries(Object.entries(ERRORS).map(([code, def]) => [code, def.status]));
    expect(SERVER_ERROR_STATUS).toEqual(statuses);
  });

  it("the client's own codes never collide with the server's", () => {
    for (const code of CLIENT_ERROR_CODES) expect(Object.keys(ERRORS)).not.toContain(code);
  });
});
