// The subject builders are the only place subjects are spelled.
import { describe, expect, it } from 'vitest';
import { apiSubjects, busSubjects, captureConsumerName, captureStreamName, parseApiSubject } from '../src/index.js';

describe('subjects', () => {
  it('builds the upstream subjects of DESIGN §6', () => {
    expect(apiSubjects.push('acme')).toBe('ferry.api.v1.acme.push');
    expect(apiSubjects.pull('acme')).toBe('ferry.api.v1.acme.pull');
    expect(apiSubjects.snapshot('acme')).toBe('ferry.api.v1.acme.snapshot');
    expect(apiSubjects.feed('acme')).toBe('ferry.api.v1.acme.feed');
    expect(apiSubjects.anyPush).toBe('ferry.api.v1.*.push');
  });

  it('builds the bus subjects of DESIGN §5, with a configurable prefix', () => {
    expect(busSubjects('notes')).toEqual({
      changes: 'ferry.notes.changes',
      state: 'ferry.notes.state',
      events: 'ferry.notes.events',
      status: 'ferry.notes.status',
      query: 'ferry.notes.query',
    });
    expect(busSubjects('notes', 'acme.local').changes).toBe('acme.local.notes.changes');
  });

  it('parses API subjects and refuses anything else', () => {
    expect(parseApiSubject('ferry.api.v1.acme.push')).toEqual({ tenant: 'acme', verb: 'push' });
    expect(parseApiSubject('ferry.api.v2.acme.push')).toBeNull();
    expect(parseApiSubject('ferry.api.v1.acme.push.extra')).toBeNull();
    expect(parseApiSubject('ferry.notes.changes')).toBeNull();
  });

  it('derives JetStream names without dots', () => {
    expect(captureStreamName('notes')).toBe('FERRY_NOTES_CHANGES');
    expect(captureConsumerName('my-app')).toBe('ferry-my-app-daemon');
  });
});
