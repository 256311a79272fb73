/**
 * The key layout as data, for the manifest: what another language needs to build the very keys
 * the TypeScript limiter uses (src/client/keys.ts builds them; test/python.test.ts and
 * test/codegen check that both agree). Templates fill `${name}` placeholders in one pass.
 * subject / taggedSubject are src/client/keys.ts subjectKey (layout 'subject').
 */
export const KEY_LAYOUT = {
  doc: 'How the limiter names its keys. The part in braces is the Redis Cluster hash tag: every key of one call shares it, so they live in one slot. tag is the subject\'s hashTag, or its id when it has none.',
  defaultPrefix: 'rl',
  templates: {
    id: { template: '${prefix}:{${id}}:${limit}', when: 'a limit without scope, and the tag is the id (the common case: the id is not repeated)' },
    taggedId: { template: '${prefix}:{${tag}}:${limit}:${id}', when: 'a limit without scope, and a hashTag other than the id' },
    scoped: { template: '${prefix}:{${tag}}:${limit}:${scopeValue}', when: "a limit with scope: 'name': scopeValue is the subject's scopes[name]" },
    block: { template: '${prefix}:{${tag}}:!block:${id}', when: 'the penalty box of block() (algo block in multi)' },
    subject: {
      template: '${prefix}:{${id}}:${limits}',
      when: "layout 'subject' (every limit of a subject in one key, the tiers scripts), and the tag is the id: limits is the limiter's limit names in its order, joined by '+' (rules.limits). With one limit it is that limit's id key",
    },
    taggedSubject: {
      template: '${prefix}:{${tag}}:${limits}:${id}',
      when: "layout 'subject', and a hashTag other than the id: limits as in subject. With one limit it is that limit's taggedId key",
    },
  },
  rules: {
    prefix: { pattern: '^[^{}]+$', doc: 'non-empty, without braces' },
    limit: { pattern: '^[A-Za-z0-9_-]{1,64}$', doc: 'a limit name: letters, digits, _ and -, at most 64' },
    limits: {
      separator: '+',
      doc: "a subject key's limits: every limit name of the limiter (each a limit), in the limiter's order, joined by separator. A name has no '+', so this is never one limit's key (with two or more), and another set or order of limits is another key",
    },
    part: {
      minLength: 1,
      maxUtf16Units: 512,
      forbidden: ['{', '}'],
      wellFormed: true,
      doc: 'id, tag and scope values: non-empty, at most 512 UTF-16 code units, without braces, no lone surrogates (clients would send them as U+FFFD, so two ids would share a key)',
    },
  },
} as const;
