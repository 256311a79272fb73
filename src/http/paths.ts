/**
 * How a framework's router turns a request target into the path it routes, so that a rule for
 * `/login` also catches every spelling the framework sends to the `/login` handler. Measured on
 * real servers: Express 5 folds case and ignores one trailing slash by default (so does
 * `express.Router()`, whatever the app's settings, and @koa/router); Fastify decodes
 * percent-escapes once and, per its router options, folds case, ignores trailing or duplicate
 * slashes and ends the path at `;`; Hono decodes once and resolves `.`/`..` segments (WHATWG URL
 * parsing), and with `strict: false` ignores a trailing slash. All of them route the path of an
 * absolute-form target (`GET http://host/login`) and stop at `?` and `#`.
 */
export interface PathMatching {
  /** Letters match regardless of case. */
  caseInsensitive: boolean;
  /** Trailing slashes reach the same route (`/login/` is `/login`). */
  ignoreTrailingSlash: boolean;
  /** A run of slashes is one (`//login` is `/login`). */
  ignoreDuplicateSlashes: boolean;
  /** `;` ends the path as `?` does (`/login;x=1` is `/login`). */
  semicolonDelimiter: boolean;
  /** `.` and `..` segments (also `%2e`) are resolved (`/x/../login` is `/login`). */
  resolveDotSegments: boolean;
}

/**
 * Every normalisation any supported router applies: what a rule matches when the adapter does not
 * know the router (Node's http, Express, Connect, Koa, plain fetch handlers). Matching more
 * spellings than the router routes only puts requests that reach no handler under the rule.
 */
export const ANY_ROUTER: PathMatching = Object.freeze({ caseInsensitive: true, ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, semicolonDelimiter: true, resolveDotSegments: true });

/** The path of a request target: absolute-form reduced to its path, query and fragment cut. */
export function requestPath(target: string | undefined): string {
  let t = target ?? '/';
  if (!t.startsWith('/')) {
    const origin = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(t);
    if (origin) t = t.slice(origin[0].length);
  }
  const end = t.search(/[?#]/);
  const path = end === -1 ? t : t.slice(0, end);
  return path === '' ? '/' : path;
}

/**
 * Percent-escapes decoded once, as the routers do (a run that is not valid UTF-8 is kept as it
 * is, like Hono). `%2F` stays encoded: no router splits segments on it.
 */
export function decodeOnce(path: string): string {
  if (!path.includes('%')) return path;
  return path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run).replaceAll('/', '%2F');
    } catch {
      return run;
    }
  });
}

/** RFC 3986 remove_dot_segments on an absolute path (what WHATWG URL parsing does). */
function resolveDots(path: string): string {
  if (!/(^|\/)\.\.?(\/|$)/.test(path)) return path;
  const segments = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

/** The spellings of one request path a rule is tested against. */
export interface PathForms {
  /** As sent (absolute-form and query removed). */
  raw: string;
  /** Decoded once, `;` cut, dots resolved and slashes collapsed as the router does. */
  normalised: string;
  /** `normalised` with trailing slashes dropped and, for a case-insensitive router, lower case. */
  canonical: string;
  matching: PathMatching;
}

export function pathForms(raw: string, m: PathMatching): PathForms {
  let p = raw;
  if (m.semicolonDelimiter) {
    const semi = p.indexOf(';');
    if (semi !== -1) p = p.slice(0, semi) || '/';
  }
  p = decodeOnce(p);
  if (m.resolveDotSegments) p = resolveDots(p);
  if (m.ignoreDuplicateSlashes) p = p.replace(/\/{2,}/g, '/');
  const normalised = p;
  if (m.ignoreTrailingSlash) p = p.replace(/(.)\/+$/, '$1');
  return { raw, normalised, canonical: m.caseInsensitive ? p.toLowerCase() : p, matching: m };
}

const matchingIndex = (m: PathMatching) => (+m.caseInsensitive) | (+m.ignoreTrailingSlash << 1) | (+m.ignoreDuplicateSlashes << 2) | (+m.semicolonDelimiter << 3) | (+m.resolveDotSegments << 4);

/**
 * A rule's path. A string is one route: it matches a request whose path, normalised as the
 * router normalises it, equals the string normalised the same way (so `/login` matches
 * `/LOGIN/` on Express and `/l%6Fgin` on Fastify). A RegExp is tested against the raw, the
 * normalised and the canonical spellings (case-insensitively where the router is) and matches if
 * any of them does; a `g` or `y` flag is dropped (it would make `test` stateful).
 */
export class PathPattern {
  private readonly canonical = new Map<number, string>();
  private readonly exact: RegExp | null = null;
  private readonly folded: RegExp | null = null;

  constructor(readonly path: string | RegExp) {
    if (typeof path !== 'string') {
      const flags = path.flags.replace(/[gy]/g, '');
      this.exact = new RegExp(path.source, flags);
      this.folded = new RegExp(path.source, flags.includes('i') ? flags : `${flags}i`);
    }
  }

  matches(f: PathForms): boolean {
    if (typeof this.path === 'string') {
      if (this.path === f.raw) return true;
      const i = matchingIndex(f.matching);
      let mine = this.canonical.get(i);
      if (mine === undefined) this.canonical.set(i, (mine = pathForms(this.path, f.matching).canonical));
      return mine === f.canonical;
    }
    const re = f.matching.caseInsensitive ? this.folded! : this.exact!;
    return re.test(f.raw) || re.test(f.normalised) || (f.matching.ignoreTrailingSlash && re.test(f.normalised.replace(/(.)\/+$/, '$1')));
  }
}
