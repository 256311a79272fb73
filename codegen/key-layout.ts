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
  adoption: {
    marker: '${prefix}:!adopt:${limits}',
    doc: "Whether limiters of one key per subject send the tiers scripts `adopt` on decisions, peeks and refunds (resets and settles always send it), one marker per prefix and set of limit names (limits as in subject), shared by every process, Node and Python (src/client/adoption.ts). Missing: the first process to see it claims it (SET NX claimValue PX claimMs, renewed while it works) and SCANs every primary for a key of these limits kept a key per limit (scanMatch, then a key of ownKey's form; stops at the first), then sets foundValue for foundMs or noneValue for noneMs; a scan that failed, or whose server changed under it (INFO's run_id) or whose Cluster slot map did, or that did not visit a primary CLUSTER SLOTS names (a client's topology older than a reshard onto a new node), sets foundValue. noneValue: decisions send no adopt until the marker expires (then the next look); anything else (or no marker yet): they send it. A limiter pinned to a key per limit where the default would take one key per subject sets foundValue for foundMs every half of it. An operator may set it: noneValue stops adoption for as long as it lives.",
    scanMatch: '${prefix}:{*}:*',
    ownKey: "a key the scan counts: `${prefix}:{<tag>}:<name>`, or that followed by `:` and anything, <name> being one of the marker's limits (the prefix taken literally: glob characters escaped in scanMatch)",
    claimValue: 'scanning',
    foundValue: 'found',
    noneValue: 'none',
    claimMs: 120_000,
    foundMs: 3_600_000,
    noneMs: 86_400_000,
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
