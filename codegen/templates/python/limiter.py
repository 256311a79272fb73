# --- Limiter (hand-written: what the Node RateLimiter does around the scripts) -------------------
# One call per decision, all-or-nothing over the limiter's limits, through the scripts a Node
# limiter runs on the same keys: multi (limit; a lone limit of an algorithm: that algorithm's own
# script), multi_peek (peek), each limit's refund script
# (refund), reset, reserve and settle (reserve / commit / cancel), concurrency_release (release);
# with the subject layout (every limit of a subject in one key) tiers, tiers_peek, tiers_refund,
# tiers_reset, tiers_reserve and tiers_settle, each with adopt. Every argument, range and reply
# field comes from the headers.

_ALGORITHMS = [a["name"] for a in MANIFEST["algorithms"]]
# Every parameter a Limit may carry (the generated Limit fields between algo and scope).
_PARAM_FIELDS = list(dict.fromkeys(p["name"] for k in _LIMIT_KINDS.values() for p in k["params"]))
# What a subject's one key can hold (layout "subject"; src/runtime/checks.ts TIERS_ALGOS): limits
# whose state is one string.
_TIERS_ALGOS = ("gcra", "token_bucket", "fixed_window", "sliding_window", "quota")
_LAYOUTS = ("auto", "per-limit", "subject")
# settle's status codes, as its header states them (0 unknown ... 4 mismatch); the names Node reports.
_SETTLE_STATUS = ("unknown", "committed", "cancelled", "already-settled", "mismatch")


def _uses_subject_layout(layout, limits, blocks):
    """Whether a subject's limits share one key, as Node's usesSubjectLayout decides: layout
    "subject", or "auto" where the one key can hold them (on a Redis Cluster too)."""
    if len(limits) < 2 or layout == "per-limit":
        return False
    if layout == "subject":
        return True
    return not blocks and all(l.algo in _TIERS_ALGOS and l.scope in (None, "id") for l in limits)


def _own_keys(key, adopt, names):
    """The keys a subject's key's limits had with a key per limit (lib/tiers' rl_tiers_own_keys): the
    key with its "}:<adopt>" segment (ending at ':' or the key's end) replaced by each limit's
    name; None when the key does not name its limits so."""
    seg = "}:" + adopt
    i = key.find(seg)
    if i < 0:
        return None
    e = i + len(seg)
    if e < len(key) and key[e] != ":":
        return None
    return [key[: i + 2] + n + key[e:] for n in names]


def _subject_of_own_key(key, name, adopt):
    """The subject's key whose first limit's own key is `key` (its "}:<name>" segment, ending at ':'
    or the key's end, replaced by adopt), or None."""
    seg = "}:" + name
    i = key.find(seg)
    while i >= 0:
        e = i + len(seg)
        if e == len(key) or key[e] == ":":
            return key[: i + 2] + adopt + key[e:]
        i = key.find(seg, i + 1)
    return None


def _group_arg(script, name):
    """The manifest spec of a group field of a script over a list (None if it has no such field)."""
    each = script.spec.get("each")
    return next((a for a in (each["args"] if each else []) if a["name"] == name), None)


# A priority share travels in parts per million: share_ppm's largest value is the whole capacity.
_PPM = _group_arg(SCRIPTS["multi"], "share_ppm")["max"]


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _check_priorities(p, where):
    if not isinstance(p, Mapping) or not p:
        raise InvalidArgument(f"redlimit limiter: {where} must be {{class_name: share}}, e.g. {{'critical': 1, 'batch': 0.5}}")
    for k, v in p.items():
        if not isinstance(k, str) or not re.fullmatch(_RULES["limit"]["pattern"], k):
            raise InvalidArgument(f"redlimit limiter: {where}: class {k!r} must be a name of letters, digits, _ or -")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise InvalidArgument(f"redlimit limiter: {where}.{k} must be a share of the capacity, 0 < share <= 1, got {v!r}")


def _check_limit(l):
    if not isinstance(l.name, str) or not re.fullmatch(_RULES["limit"]["pattern"], l.name):
        raise InvalidArgument(f"redlimit limiter: a limit's name must be {_RULES['limit']['doc']}, got {l.name!r:.60}")
    kind = _LIMIT_KINDS.get(l.algo)
    if kind is None:
        raise InvalidArgument(f"redlimit limiter: limit {l.name}: algo must be one of {'|'.join(_LIMIT_KINDS)}, got {l.algo!r}")
    takes = [p["name"] for p in kind["params"]]
    for f in _PARAM_FIELDS:
        if f not in takes and getattr(l, f) is not None:
            raise InvalidArgument(f"redlimit limiter: limit {l.name}: {l.algo} takes no {f} (it takes {', '.join(takes)})")
    for p in kind["params"]:
        _arg("limiter", p, getattr(l, p["name"]), f"limit {l.name}: {p['name']}")
    if l.scope is not None and (not isinstance(l.scope, str) or not l.scope):
        raise InvalidArgument(f"redlimit limiter: limit {l.name}: scope must be a scope name, got {l.scope!r}")
    if l.priorities is not None:
        _check_priorities(l.priorities, f"limit {l.name}: priorities")
    if l.time_zone is not None:
        if l.algo not in _ZONED:
            raise InvalidArgument(f"redlimit limiter: limit {l.name}: time_zone is for {' and '.join(_ZONED)} limits, not {l.algo}")
        if l.utc_offset_ms is not None:
            raise InvalidArgument(f"redlimit limiter: limit {l.name}: give time_zone or utc_offset_ms, not both (a time zone has its own offsets)")
        _zone(l.time_zone)


# --- Time zones: a calendar quota in an IANA zone on the server clock -------------------------
# The scripts know no zones: the client sends the zone's UTC offsets and the instants they change
# for a window around now (tz_rules, "off0;t1:off1;..." in ms), and the script picks the offset in
# effect at the server's now and at each period boundary. Built as src/client/time-zone.ts builds
# them (the same window, sampling and search), from the system's tz database (zoneinfo).

# Algorithms whose script takes a time zone's rules (tz_rules): quota.
_ZONED = [a for a in _ALGORITHMS if any(x["name"] == "tz_rules" for x in SCRIPTS[a].spec["args"])]
_DAY_MS = 86_400_000
_TZ_BEFORE_MS = 40 * _DAY_MS  # a server clock behind ours, and periods that began a month ago
_TZ_AFTER_MS = 400 * _DAY_MS  # a year and a month: the current and next month are always inside
_TZ_REFRESH_AFTER_MS = 300 * _DAY_MS  # rebuilt with three months still ahead
_TZ_STEP_MS = 6 * 3_600_000  # no zone changes its offset twice in 6 hours
_tz_cache = {}


def _zone(name):
    try:
        from zoneinfo import ZoneInfo
    except ImportError:  # Python < 3.9
        raise InvalidArgument("redlimit quota: time_zone needs Python 3.9+ (zoneinfo)") from None
    try:
        if not isinstance(name, str) or not name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise InvalidArgument(f'redlimit quota: time_zone must be an IANA time zone name (e.g. "Europe/Berlin"), got {str(name)[:60]!r}') from None


def _zone_offset_ms(zone, t_ms):
    """The UTC offset of zone at instant t (whole seconds, as the tz database has them), ms."""
    return int(datetime.fromtimestamp(t_ms // 1000, tz=zone).utcoffset().total_seconds()) * 1000


def tz_rules(time_zone, now_ms=None):
    """The rules of an IANA time zone for [now - 40 days, now + 400 days), as the quota scripts take
    them (tz_rules) and as Node's tzRulesFor builds them."""
    zone = _zone(time_zone)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    from_ms = (now_ms - _TZ_BEFORE_MS) // 1000 * 1000
    to_ms = from_ms + _TZ_BEFORE_MS + _TZ_AFTER_MS
    entries = [str(_zone_offset_ms(zone, from_ms))]
    at, offset = from_ms, _zone_offset_ms(zone, from_ms)
    while at < to_ms:
        nxt = min(at + _TZ_STEP_MS, to_ms)
        if _zone_offset_ms(zone, nxt) != offset:
            a, b = at // 1000, nxt // 1000  # the first whole second in (at, nxt] with another offset
            while b - a > 1:
                m = (a + b) // 2
                if _zone_offset_ms(zone, m * 1000) == offset:
                    a = m
                else:
                    b = m
            at, offset = b * 1000, _zone_offset_ms(zone, b * 1000)
            entries.append(f"{at}:{offset}")
            continue
        at = nxt
    return ";".join(entries)


def _tz_rules_now(time_zone):
    """tz_rules of the zone around now, built again when its window runs short."""
    now = int(time.time() * 1000)
    cached = _tz_cache.get(time_zone)
    if cached is None or now >= cached[1]:
        rules = tz_rules(time_zone, now)
        cached = (rules, (now - _TZ_BEFORE_MS) // 1000 * 1000 + _TZ_BEFORE_MS + _TZ_REFRESH_AFTER_MS)
        _tz_cache[time_zone] = cached
    return cached[0]


def _limit_item(l):
    """The limit as a multi / reserve item: its parameters by item field, defaults applied as Node applies them."""
    params = _LIMIT_KINDS[l.algo]["params"]
    values = {}
    for p in params:
        v = getattr(l, p["name"])
        d = p["default"]
        if v is None and d is not None:
            v = values.get(d["arg"], getattr(l, d["arg"], None)) if isinstance(d, dict) else d
        values[p["name"]] = v
    item = {"algo": l.algo}
    for p in params:
        if values[p["name"]] is not None:
            item[p["item"]] = values[p["name"]]
    return item


@dataclass(frozen=True)
class Subject:
    """Who a call is for, as a Node limiter's subject: id, hash_tag (hashTag), scopes."""

    id: str
    hash_tag: Optional[str] = None
    scopes: Optional[Mapping[str, str]] = None


@dataclass(frozen=True)
class LimitResult(MultiItemResult):
    """One limit's part of a decision: its per-limit reply, with the limit's name and size."""

    name: str
    limit: int


@dataclass(frozen=True)
class PriorityApplied:
    """The priority class a call named and, per limit, the share of its capacity that class may use."""

    class_name: str
    shares: Dict[str, float]


@dataclass(frozen=True)
class Decision:
    """A limiter's answer, as the Node limiter's Decision: the top-level numbers describe one limit,
    the first that denied, else the one closest to denying."""

    allowed: bool
    limit_name: Optional[str]
    """The limit remaining, limit and reset_after_ms describe; None when a block denied."""
    remaining: int
    limit: int
    reset_after_ms: int
    retry_after_ms: int
    """0 when allowed; ms until this cost could be admitted; -1 never (a cost above a limit)."""
    denied_by: Optional[str]
    """The first limit that denied ("block" for the penalty box), or None."""
    limits: List[LimitResult]
    priority: Optional[PriorityApplied] = None
    holder: Optional[str] = None
    """The holder id of the concurrency slot(s) this call took (release it); None when none was taken."""
    source: str = "redis"
    """Who decided: "redis"; "fail-open" / "fail-closed" when Redis could not and the limiter's
    on_redis_failure answered (then limits is [] and limit_name None), as Node's Decision.source."""


@dataclass(frozen=True)
class Reserved(Decision):
    """reserve's answer: the decision, and the handle to commit or cancel (None when denied: nothing was taken)."""

    handle: Optional[str] = None


@dataclass(frozen=True)
class SettledLimit(SettleItemResult):
    """One key of a settled reservation (named after the limiter's limit at its position; "block" past them)."""

    name: str


@dataclass(frozen=True)
class Settlement:
    """commit / cancel's answer: status "committed", "cancelled" or "already-settled" (then nothing changed)."""

    status: str
    limits: List[SettledLimit]


@dataclass(frozen=True)
class RefundedLimit(TiersRefundItemResult):
    """A limit after refund(): what it holds now (the same fields from each limit's refund script
    and from tiers_refund)."""

    name: str


@dataclass(frozen=True)
class ReleasedLimit(ConcurrencyReleaseResult):
    """A concurrency limit after release()."""

    name: str


class RateLimited(Exception):
    """Limiter.hold() was denied; .decision says why and for how long."""

    def __init__(self, decision):
        self.decision = decision
        why = "Redis unavailable (the limiter fails closed)" if decision.source == "fail-closed" else f"denied by {decision.denied_by}"
        super().__init__(f"redlimit: {why}, retry after {decision.retry_after_ms} ms")


# --- The adoption switch (Node's src/client/adoption.ts, over redis-py) -------------------------

_ADOPTION = KEY_LAYOUT["adoption"]


def _text(value, encoding="utf-8"):
    return value.decode(encoding, "replace") if isinstance(value, bytes) else value


def _encoding(client):
    """The encoding the client sends keys in (redis-py's Encoder; utf-8 unless given)."""
    for get in (lambda: client.get_encoder(), lambda: client.encoder, lambda: client.connection_pool.get_encoder()):
        try:
            enc = get().encoding
            if isinstance(enc, str):
                return enc
        except Exception:
            pass
    return "utf-8"


def _run_id(info):
    """INFO server's run_id (parsed by redis-py into a dict; a Cluster node's maybe under its name)."""
    if isinstance(info, dict) and "run_id" not in info and len(info) == 1:
        info = next(iter(info.values()))
    return _text(info.get("run_id")) if isinstance(info, dict) else None


def _slot_map(reply):
    """CLUSTER SLOTS (as redis-py parses it: {(start, end): {"primary": (host, port), ...}}) as one
    comparable string of the ranges and their primaries, and the primaries' "host:port" set."""
    if not isinstance(reply, dict):
        raise TypeError(f"CLUSTER SLOTS: unexpected reply {type(reply).__name__}")
    ranges, primaries = [], set()
    for k, v in reply.items():
        host, port = v["primary"][0], v["primary"][1]
        primaries.add((_text(host), int(port)))
        ranges.append((tuple(k), _text(host), int(port)))
    return repr(sorted(ranges)), primaries


def _knows(nodes, host, port):
    """Whether a primary CLUSTER SLOTS names ("host", port) is one of the client's nodes, as redis-py
    names them: an empty host is the one the client connected to (any node of that port), and
    "localhost" is 127.0.0.1."""
    host = "127.0.0.1" if host == "localhost" else host
    return any(int(n.port) == port and (host == "" or ("127.0.0.1" if n.host == "localhost" else n.host) == host) for n in nodes)


def _drive(steps, run):
    """Runs a generator of commands to its result: it yields (node, args) and gets each reply back,
    or the command's error raised where it yielded."""
    try:
        cmd = next(steps)
        while True:
            try:
                reply = run(*cmd)
            except Exception as e:
                cmd = steps.throw(e)
                continue
            cmd = steps.send(reply)
    except StopIteration as done:
        return done.value


async def _drive_async(steps, run):
    """_drive on an asyncio client."""
    try:
        cmd = next(steps)
        while True:
            try:
                reply = await run(*cmd)
            except Exception as e:
                cmd = steps.throw(e)
                continue
            cmd = steps.send(reply)
    except StopIteration as done:
        return done.value


_SWITCHES = weakref.WeakSet()


def _after_fork():
    """In a forked child: a scan the parent had under way is not the child's (its thread or task did
    not come along): look again at the next call (the parent's claim makes that a wait)."""
    for sw in list(_SWITCHES):
        sw._lock = threading.Lock()
        sw._looking = False
        sw._loop = None
        if sw._due == float("inf"):
            sw.worker = None
            sw._due = 0.0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class _AdoptionSwitch:
    """Whether a Limiter of one key per subject sends tiers' adopt on its decisions, peeks and
    refunds (resets and settles always send it), by the marker every process follows, Node's and
    Python's (KEY_LAYOUT["adoption"]; src/client/adoption.ts). A look at the marker is due at the
    first call and when what it last said runs out; the call that finds it due makes it first (GET
    and PTTL: inline on a redis.Redis, awaited on a redis.asyncio.Redis), one look at a time. A
    missing marker is claimed and the keyspace scanned beside the calls (a daemon thread, or a task
    of the running loop), which send adopt meanwhile. Role "mark" (a limiter pinned to a key per
    limit where "auto" would take one key) sets the marker to found instead, every half of its
    life. Redis trouble while looking is not the call's: it keeps adopting and looks again in a
    minute. On a Cluster a scan that did not visit a primary CLUSTER SLOTS names counts as found,
    so a client whose node addresses are not those (a NAT map, address_remap) keeps looking."""

    def __init__(self, client, prefix, names, role):
        self.client = client
        self.prefix = prefix
        self.names = list(names)
        self.role = role
        self.marker = _fill(_ADOPTION["marker"], prefix=prefix, limits=_RULES["limits"]["separator"].join(self.names))
        self.on = True
        self._due = 0.0  # time.monotonic() of the next look
        self._looking = False
        self._cluster = hasattr(client, "get_primaries")
        self._async = inspect.iscoroutinefunction(getattr(type(client), "execute_command", None))
        self._lock = threading.Lock()  # one look at a time (threads sharing a sync client)
        self.worker = None  # the scan's thread or task, while there is one
        self._loop = None  # asyncio: the loop a look or a scan runs in, while it does
        _SWITCHES.add(self)

    def before(self, call):
        """call(), after a look at the marker when one is due (a coroutine on an asyncio client)."""
        if self._looking or time.monotonic() < self._due:
            if self._loop is None or not self._loop.is_closed():
                return call()
            # The loop a look or a scan ran in was closed under it (its tasks never finished):
            # nothing learnt; look again.
            self._looking, self.worker, self._loop = False, None, None
            if self._due == float("inf"):
                self._due = 0.0
        if self._async:
            async def looked():
                if not self._looking and time.monotonic() >= self._due:
                    self._looking = True
                    self._loop = asyncio.get_running_loop()
                    try:
                        await _drive_async(self._look(), self._run_async)
                    except Exception:
                        self._trouble()
                    finally:
                        self._looking = False
                        if self.worker is None:
                            self._loop = None
                return await call()
            return looked()
        if not self._lock.acquire(blocking=False):
            return call()
        try:
            if time.monotonic() >= self._due:
                _drive(self._look(), self._run)
        except Exception:
            self._trouble()
        finally:
            self._lock.release()
        return call()

    def _trouble(self):
        self.on = True
        self._due = time.monotonic() + 60

    def _run(self, node, args):
        return self.client.execute_command(*args, target_nodes=node) if node is not None else self.client.execute_command(*args)

    async def _run_async(self, node, args):
        return await (self.client.execute_command(*args, target_nodes=node) if node is not None else self.client.execute_command(*args))

    def _look(self):
        a = _ADOPTION
        if self.role == "mark":
            yield None, ("SET", self.marker, a["foundValue"], "PX", a["foundMs"])
            self._due = time.monotonic() + a["foundMs"] / 2000
            return
        value = _text((yield None, ("GET", self.marker)))
        left = int((yield None, ("PTTL", self.marker)))
        if value is None:
            if (yield None, ("SET", self.marker, a["claimValue"], "NX", "PX", a["claimMs"])):
                # Claimed: this process scans, beside the calls (which adopt meanwhile).
                self.on = True
                self._due = float("inf")
                self._start_scan()
                return
            value, left = a["claimValue"], 2000
        self.on = value != a["noneValue"]
        # Expired between GET and PTTL (-2): soon again; without expiry (-1, an operator's): a day.
        ms = 1000 if left == -2 else a["noneMs"] if left < 0 else 2000 if value == a["claimValue"] else max(left, 1000)
        self._due = time.monotonic() + ms / 1000

    def _start_scan(self):
        if self._async:
            async def scan():
                try:
                    try:
                        found = await _drive_async(self._scan(), self._run_async)
                    except Exception:
                        found = None
                    await _drive_async(self._scanned(found), self._run_async)
                except Exception:
                    self._trouble()
                finally:
                    # Cancelled (its loop closed mid-scan): nothing learnt; the next call looks again
                    # (the claim, left to expire, makes that a wait of its own).
                    if self._due == float("inf"):
                        self._due = 0.0
                    self.worker = None
                    self._loop = None

            self.worker = asyncio.get_running_loop().create_task(scan())
        else:
            # A client of one connection (single_connection_client) is not the thread's to share.
            own = getattr(self.client, "connection", None) is not None and hasattr(self.client, "connection_pool")
            client = type(self.client)(connection_pool=self.client.connection_pool) if own else self.client

            def run(node, args):
                return client.execute_command(*args, target_nodes=node) if node is not None else client.execute_command(*args)

            def scan():
                try:
                    try:
                        found = _drive(self._scan(), run)
                    except Exception:
                        found = None
                    _drive(self._scanned(found), run)
                except Exception:
                    self._trouble()
                finally:
                    if self._due == float("inf"):
                        self._due = 0.0

            self.worker = threading.Thread(target=scan, name="redlimit-adoption-scan", daemon=True)
            self.worker.start()

    def _scanned(self, found):
        """The marker after a scan: found (or a scan that failed: None) for foundMs, else none."""
        a = _ADOPTION
        value = a["noneValue"] if found is False else a["foundValue"]
        ms = a["noneMs"] if found is False else a["foundMs"]
        try:
            yield None, ("SET", self.marker, value, "PX", ms)
        except Exception:
            found, ms = None, 60_000  # not recorded: keep looking, and look at the marker again in a minute
        self.on = found is not False
        self._due = time.monotonic() + ms / 1000

    def _scan(self):
        """Whether the keyspace holds a key of these limits kept a key per limit (stops at the first):
        on a Cluster, every primary's; a server that changed under the scan (run_id), a Cluster
        whose slot map did, or one naming a primary the client does not know, counts as found."""
        match = _fill(_ADOPTION["scanMatch"], prefix=re.sub(r"([*?\[\]\\])", r"\\\1", self.prefix))
        own = re.compile("^" + re.escape(self.prefix) + r":\{[^}]*\}:(?:" + "|".join(map(re.escape, self.names)) + r")(?::|\Z)")
        encoding = _encoding(self.client)
        slot_map = _slot_map((yield None, ("CLUSTER SLOTS",))) if self._cluster else None
        nodes = list(self.client.get_primaries()) if self._cluster else [None]
        if not nodes:
            raise RuntimeError("no primaries to scan")
        # A primary the server names that the client does not know (its topology is older than a
        # reshard onto a new node): its keys would not be scanned; counts as found.
        if self._cluster and not all(_knows(nodes, host, port) for host, port in slot_map[1]):
            return True
        pages = 0
        for node in nodes:
            started = yield from self._server_run_id(node)
            cursor = 0
            while True:
                reply = yield node, ("SCAN", cursor, "MATCH", match, "COUNT", 1000)
                if not isinstance(reply, (list, tuple)) or len(reply) != 2:
                    raise TypeError(f"SCAN: unexpected reply {type(reply).__name__}")
                cursor, keys = reply
                if isinstance(cursor, dict):
                    cursor = next(iter(cursor.values()))
                cursor = int(cursor)
                if any(own.match(_text(k, encoding)) for k in keys):
                    return True
                pages += 1
                if pages % 100 == 0:  # a long scan keeps its claim
                    yield None, ("PEXPIRE", self.marker, _ADOPTION["claimMs"])
                if cursor == 0:
                    break
            if started != (yield from self._server_run_id(node)):
                return True
        if self._cluster and slot_map[0] != _slot_map((yield None, ("CLUSTER SLOTS",)))[0]:
            return True
        return False

    def _server_run_id(self, node):
        """The server's run_id, or None where INFO is refused (an ACL without it: not compared, as Node's)."""
        try:
            return _run_id((yield node, ("INFO", "server")))
        except ResponseError:
            return None


class _Hold:
    """limiter.hold(): `with` (redis.Redis) or `async with` (redis.asyncio.Redis)."""

    def __init__(self, limiter, subject, cost, priority):
        self.limiter, self.subject, self.cost, self.priority = limiter, subject, cost, priority
        self.decision = None

    def _admit(self, d):
        if not d.allowed:
            raise RateLimited(d)
        self.decision = d
        return d

    def __enter__(self):
        d = self.limiter.limit(self.subject, cost=self.cost, priority=self.priority)
        if inspect.isawaitable(d):
            d.close()
            raise TypeError("redlimit: an asyncio client: use `async with limiter.hold(...)`")
        return self._admit(d)

    # A release that does not land (RedisUnavailable) is not the body's failure, and must not hide
    # the body's own exception: the slot frees itself after the limit's period_ms (as Node's
    # `await using`).

    def __exit__(self, *exc):
        if self.decision is not None and self.decision.holder is not None:
            try:
                self.limiter.release(self.subject, self.decision.holder)
            except RedisUnavailable:
                pass
        return False

    async def __aenter__(self):
        d = self.limiter.limit(self.subject, cost=self.cost, priority=self.priority)
        return self._admit(await d if inspect.isawaitable(d) else d)

    async def __aexit__(self, *exc):
        if self.decision is not None and self.decision.holder is not None:
            try:
                r = self.limiter.release(self.subject, self.decision.holder)
                if inspect.isawaitable(r):
                    await r
            except RedisUnavailable:
                pass
        return False


class Limiter:
    """Limits decided atomically in Redis, all-or-nothing, on the keys a Node RateLimiter with the
    same limits and prefix uses: a Python agent and a Node gateway share one budget.

    client: a redis.Redis (calls answer their result) or a redis.asyncio.Redis (calls answer a
    coroutine). limits: a Limit or a list. priorities: class -> share of every limit's capacity
    (a limit's own priorities override it). blocks: every decision checks the subject's penalty
    box (set by a Node limiter's block()), as a Node limiter with blocks: true.
    layout: where a subject's state lives, as a Node limiter's layout option. "subject": every
    limit of a subject in one key (subject_key, its limits' names in the limiter's order), decided
    by the tiers scripts; it holds two or more gcra, token_bucket, fixed_window, sliding_window or
    quota limits keyed by the id, without blocks (one limit: both layouts are the same key);
    reserve / commit / cancel go through tiers_reserve / tiers_settle there, the record beside the
    subject's key (the handle names that one key), as Node's. "per-limit": a key per limit
    (limit_key), for every limiter. "auto" (default, as Node's): "subject" where it applies (on a
    Redis Cluster too), else "per-limit": a Python and a Node limiter of the same limits pick the
    same keys. .layout says
    which one it is ("auto" resolved).
    Upgrading to the subject layout (a limiter that kept a key per limit, the default before
    "auto"): a subject's one key that holds nothing takes over its limits' own keys' states and
    deletes those keys when it is written, so counts carry over; reset deletes both. Looking for
    them costs a new subject Redis work, so decisions, peeks, refunds and reservations send adopt
    only while the adoption marker Node's limiters keep says such keys may exist; with no marker
    yet, the first call claims it and scans the keyspace beside the calls (_AdoptionSwitch;
    .adopting says whether it looks now). While
    processes of both layouts run at once (a rolling deploy from a release before "auto"), each
    counts on its own keys and a subject may get up to both budgets meanwhile: pin
    layout="per-limit" through such a deploy (on every process, Python and Node), then drop it.

    When Redis cannot answer (a connection or timeout error, LOADING, BUSY, OOM, READONLY, a
    Cluster slot on the move), no redis-py error reaches the caller: a decision (limit, peek,
    reserve, hold) answers by on_redis_failure -- "raise" (default): RedisUnavailable, a redis-py
    RedisError with .cause; "open": allowed, Decision.source "fail-open" (reserve's handle None:
    nothing to settle); "closed": denied, source "fail-closed", retry_after_ms until the breaker
    lets a call through again (hold() raises RateLimited). refund, reset, release, commit and
    cancel must land or say so: they raise RedisUnavailable. breaker: a Breaker (share one among
    the limiters of one Redis), None for one of its own with the defaults (5 failures in a row
    open it for 1 s, doubling up to 30 s), False for none; while it is open no call makes a round
    trip. The caller's own mistakes are not Redis failures: InvalidArgument, ReservationError, and
    redis-py's ResponseError for a key holding another type or state (WRONGTYPE / WRONGSTATE) are
    raised as they are, and the breaker hears nothing of them; nor of a Cluster slot on the move
    (redirects that outlast redis-py's tries: the call takes the failure path uncounted), nor of a
    call the caller cancels (asyncio.wait_for). Set socket_timeout (and socket_connect_timeout) on
    the client: a Redis that stops answering without closing its connections is a failure only
    when redis-py gives up on it. hold() does not fail on a release that does not land (the slot
    frees itself after the limit's period_ms). Unlike Node's, this limiter has no in-memory
    fallback: "open" and "closed" are the choices."""

    def __init__(self, client, limits, *, prefix=KEY_LAYOUT["defaultPrefix"], priorities=None, blocks=False, layout="auto", on_redis_failure="raise", breaker=None):
        self.client = client
        if on_redis_failure not in _ON_REDIS_FAILURE:
            raise InvalidArgument(f"redlimit limiter: on_redis_failure must be raise, open or closed, got {on_redis_failure!r:.40}")
        if breaker is not None and breaker is not False and not isinstance(breaker, Breaker):
            raise InvalidArgument(f"redlimit limiter: breaker must be a Breaker, None (one with the defaults) or False (none), got {breaker!r:.40}")
        self.on_redis_failure = on_redis_failure
        self.breaker = Breaker() if breaker is None else breaker or None
        self._async = inspect.iscoroutinefunction(getattr(type(client), "execute_command", None))
        # What each call answers when Redis cannot (made once: no closure per call).
        self._fails = {
            "limit": self._failed_decision("limit"), "peek": self._failed_decision("peek"),
            "reserve": self._failed_decision("reserve", Reserved, handle=None),
            **{what: _must_land(what, self.breaker) for what in ("refund", "reset", "release", "commit", "cancel")},
        }
        self.limits = [limits] if isinstance(limits, Limit) else list(limits) if isinstance(limits, (list, tuple)) else None
        if not self.limits or not all(isinstance(l, Limit) for l in self.limits):
            raise InvalidArgument("redlimit limiter: limits must be a Limit or a non-empty list of Limit")
        names = [l.name for l in self.limits]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidArgument(f"redlimit limiter: limit name {twice[0]} is used twice")
        self.prefix = _named(prefix, "prefix", "prefix")
        self.blocks = bool(blocks)
        if not isinstance(layout, str) or layout not in _LAYOUTS:
            raise InvalidArgument(f"redlimit limiter: layout must be auto, per-limit or subject, got {layout!r:.40}")
        # The subject layout with two or more limits: the subject's one key, the tiers scripts (as
        # Node's: one limit is its own key, whatever the layout).
        self._tiers = _uses_subject_layout(layout, self.limits, self.blocks)
        self.layout = layout if layout != "auto" else "subject" if self._tiers else "per-limit"
        # tiers' adopt: the limits' names as the subject's key names them, so the states a key per
        # limit holds move into it.
        self._adopt = _RULES["limits"]["separator"].join(l.name for l in self.limits)
        # Whether decisions send it now (the marker Node's limiters keep too); a limiter pinned to a
        # key per limit where "auto" would take one key keeps the marker at found.
        pinned = layout == "per-limit" and _uses_subject_layout("auto", self.limits, self.blocks)
        self._adoption = _AdoptionSwitch(client, self.prefix, names, "mark" if pinned else "follow") if self._tiers or pinned else None
        if self._tiers:
            if self.blocks:
                raise InvalidArgument('redlimit limiter: layout "subject" does not take blocks=True (the penalty box has a key of its own); use layout="per-limit"')
            for l in self.limits:
                if l.algo not in _TIERS_ALGOS:
                    raise InvalidArgument(f'redlimit limiter: layout "subject" holds limits of algo {", ".join(_TIERS_ALGOS)}; limit {l.name} is {l.algo}: use layout="per-limit"')
                if l.scope not in (None, "id"):
                    raise InvalidArgument(f'redlimit limiter: layout "subject" holds limits keyed by the id; limit {l.name} is keyed by scope {l.scope}: use layout="per-limit"')
        if priorities is not None:
            _check_priorities(priorities, "priorities")
        self._classes = {}
        top = dict(priorities or {})
        for name in dict.fromkeys([*top, *(n for l in self.limits for n in (l.priorities or {}))]):
            ppm = [math.floor((l.priorities or {}).get(name, top.get(name, 1)) * _PPM + 0.5) for l in self.limits]
            self._classes[name] = (name, [None if v >= _PPM else v for v in ppm], {l.name: v / _PPM for l, v in zip(self.limits, ppm)})
        self._items = [_limit_item(l) for l in self.limits]
        self._keys_of = {}
        self._unit_costs = None
        self._specs = None
        # Kinds that are not algorithms (concurrency) hold a slot for a holder until released.
        self._held = [i for i, l in enumerate(self.limits) if l.algo not in _ALGORITHMS]
        # One limit of an algorithm, on its own key, without blocks: limit() runs the algorithm's
        # own script, as a Node limiter's lone call does (the same state and answer as multi with
        # one item, for about half of multi's Redis work; costs are checked against the
        # algorithm's own range either way).
        self._single = None
        if len(self.limits) == 1 and not self.blocks and not self._tiers and not self._held:
            l = self.limits[0]
            script = SCRIPTS[l.algo]
            takes = {a["name"]: a for a in script.spec["args"]}
            params = {p["name"]: getattr(l, p["name"]) for p in _LIMIT_KINDS[l.algo]["params"] if p["name"] in takes and getattr(l, p["name"]) is not None}
            self._single = (script, params, l.time_zone)

    # --- what a call names, checked before any round trip ---------------------------------------

    def keys(self, subject):
        """The subject's keys: one per limit (in order), then its block key when blocks is on;
        with the subject layout (two or more limits), its one key."""
        if isinstance(subject, str):
            # Plain ids repeat: their keys are built (and checked) once (a bounded cache, as Node's).
            known = self._keys_of.get(subject)
            if known is None:
                known = self._build_keys(Subject(subject))
                if len(self._keys_of) >= 10_000:
                    self._keys_of.clear()
                self._keys_of[subject] = known
            return list(known)
        return self._build_keys(subject)

    def _build_keys(self, subject):
        s = subject
        if not isinstance(s, Subject):
            raise InvalidArgument("redlimit limiter: the subject must be an id string or a Subject")
        if self._tiers:
            return [subject_key([l.name for l in self.limits], s.id, prefix=self.prefix, hash_tag=s.hash_tag)]
        keys = [
            limit_key(l.name, s.id, prefix=self.prefix, hash_tag=s.hash_tag, scope=None if l.scope in (None, "id") else l.scope, scopes=s.scopes)
            for l in self.limits
        ]
        if self.blocks:
            keys.append(block_key(s.id, prefix=self.prefix, hash_tag=s.hash_tag))
        return keys

    def _costs(self, cost, unnamed=1):
        if cost is None and unnamed == 1:
            # The common call (no cost given): one unit of each limit, checked once.
            if self._unit_costs is None:
                self._unit_costs = tuple(self._costs_of(None, 1))
            return self._unit_costs
        return self._costs_of(cost, unnamed)

    def _costs_of(self, cost, unnamed):
        named = {}
        if cost is not None and not _is_int(cost):
            if not isinstance(cost, Mapping):
                raise InvalidArgument("redlimit limiter: cost must be an integer or {limit_name: integer}")
            for k in cost:
                held = any(l.name == k for i, l in enumerate(self.limits) if i in self._held)
                if held or not any(l.name == k for l in self.limits):
                    raise InvalidArgument(f"redlimit limiter: cost names limit {k}, which " + ("holds one slot per call: it takes no cost" if held else "this limiter does not have"))
            named = cost
        costs = []
        for i, l in enumerate(self.limits):
            if i in self._held:
                costs.append(1)  # one slot
                continue
            v = (named.get(l.name, unnamed) if cost is not None else 1) if not _is_int(cost) else cost
            costs.append(int(_arg(l.algo, _LIMIT_KINDS[l.algo]["cost"], v, "cost" if _is_int(cost) else f"cost.{l.name}")))
        return costs

    def _priority(self, name):
        if name is None:
            return None
        if name not in self._classes:
            known = f" ({', '.join(self._classes)})" if self._classes else ": it has no priorities"
            raise InvalidArgument(f"redlimit limiter: priority {json.dumps(name) if isinstance(name, str) else repr(name)} is not a class of this limiter{known}")
        return self._classes[name]

    def _items_for(self, script, costs, pc, holder):
        items = []
        for i, base in enumerate(self._items):
            item = dict(base, cost=costs[i])
            if pc is not None and pc[1][i] is not None:
                if _group_arg(script, "share_ppm") is None:
                    raise InvalidArgument(f"redlimit {script.name}: v{script.version} takes no priority class")
                item["share_ppm"] = pc[1][i]
            if i in self._held:
                item["holder"] = holder
            items.append(item)
        if self.blocks:
            items.append({"algo": "block"})
        return items

    def _zone_args(self, script):
        """tz_rules for a call: one entry per item ('' for a limit without a zone), none when no limit has one."""
        zones = [l.time_zone for l in self.limits]
        if not any(zones):
            return {}
        if not any(a["name"] == "tz_rules" for a in script.spec["args"]):
            raise InvalidArgument(f"redlimit {script.name}: v{script.version} takes no time zones (a quota with time_zone)")
        return {"tz_rules": "|".join([_tz_rules_now(z) if z else "" for z in zones] + ([""] if self.blocks else []))}

    def _tiers_specs(self):
        """The limits as the tiers scripts take them: `algo,limit,period_ms,burst,offset_ms,unit` each, `;`-separated (built once)."""
        if self._specs is None:
            self._specs = self._build_specs()
        return self._specs

    def _build_specs(self):
        fields = ("limit", "period_ms", "burst", "offset_ms", "unit")
        return ";".join(",".join([item["algo"]] + ["" if item.get(f) is None else str(item[f]) for f in fields]) for item in self._items)

    def _tiers_call(self, script, keys, costs, pc):
        """tiers / tiers_peek of the subject's one key: the limits as specs and adopt, the call's costs and shares."""
        specs = self._tiers_specs()
        group = {"costs": ",".join(map(str, costs))}
        if pc is not None:
            group["shares"] = ",".join(str(_PPM if v is None else v) for v in pc[1])
        return script(self.client, keys, items=[group], count=len(self.limits), specs=specs, adopt=self._adopt_now(), **self._zone_args(script))

    def _adopt_now(self):
        """The adopt a decision, peek or refund sends now: "" while the marker says none."""
        return self._adopt if self._adoption is None or self._adoption.on else ""

    def _after_look(self, call):
        """call(), after the adoption switch's look at the marker when one is due."""
        return self._adoption.before(call) if self._adoption is not None else call()

    @property
    def adopting(self):
        """Whether decisions send adopt now (the subject layout; None with a key per limit), as Node's stats().adopting."""
        return self._adoption.on if self._tiers else None

    def _tiers_results(self, reply, script, keys):
        """One tiers decision's per-limit results as multi's (allowed a bool); a key that holds
        something else raises ResponseError (WRONGTYPE / WRONGSTATE), as multi's error reply."""
        results = reply[script.spec["each"]["name"]][0]
        if results[0]["allowed"] < 0:
            code = "WRONGTYPE" if results[0]["remaining"] == 1 else "WRONGSTATE"
            what = "another Redis type" if code == "WRONGTYPE" else "a value that is not these limits' states"
            raise ResponseError(f"{code} redlimit {script.name}: key {keys[0]} holds {what}")
        return [dict(x, allowed=x["allowed"] == 1) for x in results]

    def _decide(self, results, pc, holder, cls=None, **extra):
        """The decision from a reply's per-limit results, summarised as the Node limiter does."""
        limits = [LimitResult(**results[i], name=l.name, limit=l.limit) for i, l in enumerate(self.limits)]
        priority = PriorityApplied(pc[0], dict(pc[2])) if pc is not None else None
        denied, retry = -1, 0
        for i, x in enumerate(results):
            if x["allowed"]:
                continue
            if denied < 0:
                denied = i
            own = x["retry_after_ms"]
            retry = -1 if own < 0 or retry < 0 else max(retry, own)
        cls = cls or Decision
        if denied == len(self.limits):  # the penalty box
            wait = results[denied]["retry_after_ms"]
            return cls(False, None, 0, self.limits[0].limit, wait, wait, "block", limits, priority, None, **extra)
        allowed = denied < 0
        pick = limits[0] if allowed else limits[denied]
        if allowed:
            for x in limits:
                if x.remaining * pick.limit < pick.remaining * x.limit:
                    pick = x
        return cls(
            allowed, pick.name, pick.remaining, pick.limit, pick.reset_after_ms, 0 if allowed else retry,
            None if allowed else pick.name, limits, priority, holder if allowed else None, **extra,
        )

    def _answer(self, value):
        """value as a call answers it without a round trip: a coroutine of it on an asyncio client."""
        if self._async:
            async def now():
                return value
            return now()
        return value

    # --- when Redis cannot answer ------------------------------------------------------------------

    def _guard(self, call, failed):
        """call() through this limiter's breaker; failed(error) when Redis fails (_guarded)."""
        return _guarded(self.breaker, self._async, call, failed)

    def _failed_decision(self, what, cls=Decision, **extra):
        """failed() of a decision: by on_redis_failure, as Node's fail-open / fail-closed decisions
        (no limit named, limits [], limit the first limit's; the call's priority class kept)."""
        def failed(e, pc=None):
            if self.on_redis_failure == "raise":
                raise _unavailable(what, e, self.breaker) from e
            first = self.limits[0].limit
            priority = PriorityApplied(pc[0], dict(pc[2])) if pc is not None else None
            if self.on_redis_failure == "open":
                return cls(True, None, 0, first, 0, 0, None, [], priority, None, source="fail-open", **extra)
            wait = max(1, self.breaker.retry_after_ms()) if self.breaker is not None else _CLOSED_RETRY_MS
            return cls(False, None, 0, first, wait, wait, None, [], priority, None, source="fail-closed", **extra)
        return failed

    def _fail(self, what, pc):
        """The decision call's failed(): with its priority class when it named one."""
        failed = self._fails[what]
        return failed if pc is None else lambda e: failed(e, pc)

    # --- calls ------------------------------------------------------------------------------------

    def limit(self, subject, *, cost=None, priority=None, holder=None):
        """Decide one call, consuming `cost` (an integer for every limit, or {limit_name: cost}; 1
        when omitted) if every limit admits. priority: a class of the limiter's priorities. With a
        concurrency limit the admitted call holds a slot for `holder` (a fresh id when omitted:
        Decision.holder) until release() or the limit's period_ms."""
        keys = self.keys(subject)
        costs = self._costs(cost)
        pc = self._priority(priority)
        if self._held:
            holder = uuid.uuid4().hex if holder is None else holder
        elif holder is not None:
            raise InvalidArgument("redlimit limiter: holder: this limiter has no concurrency limit")
        if self._tiers:
            tiers = SCRIPTS["tiers"]
            return self._guard(lambda: _then(self._after_look(lambda: self._tiers_call(tiers, keys, costs, pc)), lambda r: self._decide(self._tiers_results(r, tiers, keys), pc, None)), self._fail("limit", pc))
        single = self._single
        if single is not None:
            script, params, zone = single
            kwargs = dict(params, cost=costs[0])
            if pc is not None and pc[1][0] is not None:
                kwargs["share_ppm"] = pc[1][0]
            if zone is not None:
                kwargs["tz_rules"] = _tz_rules_now(zone)
            return self._guard(lambda: _then(script(self.client, keys, **kwargs), lambda r: self._decide((r,), pc, None)), self._fail("limit", pc))
        multi = SCRIPTS["multi"]
        items = self._items_for(multi, costs, pc, holder)
        return self._guard(lambda: _then(self._after_look(lambda: multi(self.client, keys, items=items, **self._zone_args(multi))), lambda r: self._decide(r[multi.spec["each"]["name"]], pc, holder)), self._fail("limit", pc))

    def peek(self, subject, *, cost=0, priority=None):
        """What limit() would answer now for this cost (default 0), taking nothing (multi_peek:
        read-only; tiers_peek with the subject layout). A concurrency limit answers whether a slot is free."""
        keys = self.keys(subject)
        costs = self._costs(cost)
        pc = self._priority(priority)
        if self._tiers:
            script = SCRIPTS["tiers_peek"]
            return self._guard(lambda: _then(self._after_look(lambda: self._tiers_call(script, keys, costs, pc)), lambda r: self._decide(self._tiers_results(r, script, keys), pc, None)), self._fail("peek", pc))
        script = SCRIPTS["multi_peek"]
        items = self._items_for(script, costs, pc, uuid.uuid4().hex if self._held else None)
        return self._guard(lambda: _then(self._after_look(lambda: script(self.client, keys, items=items, **self._zone_args(script))), lambda r: self._decide(r[script.spec["each"]["name"]], pc, None)), self._fail("peek", pc))

    def refund(self, subject, *, cost=None):
        """Give back units an admitted call did not use, never above full (Node's refund): an
        integer for every limit, or {limit_name: integer} for the limits it names (the others get
        nothing back: an RPM + TPM limiter refunding unused tokens names "tpm"); 1 each when
        omitted. Through each limit's refund script (sliding_log and concurrency limits cannot
        give units back and are left out), or tiers_refund on the subject's one key (the subject
        layout). Answers [RefundedLimit] for the limits it reached: with the subject layout every
        limit of the key; [] when every cost is 0 (nothing sent)."""
        keys = self.keys(subject)
        costs = self._costs(cost, 0)
        if not any(costs):
            return self._answer([])
        if self._tiers:
            script = SCRIPTS["tiers_refund"]
            return self._guard(lambda: _then(
                self._after_look(lambda: script(self.client, keys, items=[{"costs": ",".join(map(str, costs))}], count=len(self.limits), specs=self._tiers_specs(), adopt=self._adopt_now(), **self._zone_args(script))),
                lambda r: [RefundedLimit(**x, name=l.name) for x, l in zip(r[script.spec["each"]["name"]][0], self.limits)],
            ), self._fails["refund"])
        reached = [i for i, l in enumerate(self.limits) if costs[i] > 0 and f"{l.algo}_refund" in SCRIPTS and i not in self._held]

        def one(i):
            l = self.limits[i]
            script = SCRIPTS[f"{l.algo}_refund"]
            takes = {a["name"] for a in script.spec["args"]}
            kwargs = {p["name"]: getattr(l, p["name"]) for p in _LIMIT_KINDS[l.algo]["params"] if p["name"] in takes}
            if l.time_zone is not None:
                kwargs["tz_rules"] = _tz_rules_now(l.time_zone)
            return script(self.client, [keys[i]], cost=costs[i], **kwargs)

        if not reached:
            return self._answer([])
        return self._guard(lambda: _sequence(
            [lambda: self._after_look(lambda: one(reached[0]))] + [lambda i=i: one(i) for i in reached[1:]],
            lambda rs: [RefundedLimit(**r, name=self.limits[i].name) for i, r in zip(reached, rs)],
        ), self._fails["refund"])

    def reset(self, subject, *, limits=None, scopes=None):
        """Back to full (Node's reset): by default the limits keyed by the subject's own id (not
        those it shares through a scope) and its block; limits=[names] or scopes=[scope names]
        reset exactly those. With the subject layout, a tiers_reset of their positions in the one
        key (all of them: the key's deletion), which deletes those limits' own keys too (a key per
        limit, kept before the upgrade). Other instances drop what they cached (the scripts publish
        the keys). Answers None."""
        keys = self.keys(subject)

        def named(given, what, known):
            if given is None:
                return None
            if isinstance(given, str) or not isinstance(given, (list, tuple, set, frozenset)) or not given:
                raise InvalidArgument(f"redlimit limiter: reset {what} must be a non-empty list of names")
            for n in given:
                if not known(n):
                    raise InvalidArgument(f"redlimit limiter: reset names {'limit' if what == 'limits' else 'scope'} {json.dumps(n) if isinstance(n, str) else repr(n)}, which no limit of this limiter has")
            return set(given)

        scope_of = [l.scope if l.scope not in (None, "id") else None for l in self.limits]
        names = named(limits, "limits", lambda n: any(l.name == n for l in self.limits))
        scoped = named(scopes, "scopes", lambda n: any((s or "id") == n for s in scope_of))
        own = names is None and scoped is None
        picked = [i for i, l in enumerate(self.limits) if (scope_of[i] is None if own else (l.name in (names or ()) or (scope_of[i] or "id") in (scoped or ())))]
        if self._tiers:
            # tiers_reset of the named limits' positions (every limit: the key goes), adopt: their
            # own keys go too, so a later decision does not take their states over.
            script = SCRIPTS["tiers_reset"]
            return self._guard(lambda: _then(script(self.client, keys, count=len(self.limits), limits=",".join(str(i + 1) for i in picked), adopt=self._adopt), lambda r: None), self._fails["reset"])
        chosen = [keys[i] for i in picked]
        if self.blocks and own:
            chosen.append(keys[-1])
        if not chosen:
            raise InvalidArgument("redlimit limiter: every limit of this limiter is keyed by a scope: name the limits or scopes to reset")
        return self._guard(lambda: _then(SCRIPTS["reset"](self.client, chosen), lambda r: None), self._fails["reset"])

    def hold(self, subject, *, cost=None, priority=None):
        """limit() as a context manager: RateLimited when denied; the concurrency slot released on exit.

            with limiter.hold("agent-7") as d: ...          # redis.Redis
            async with limiter.hold("agent-7") as d: ...    # redis.asyncio.Redis"""
        return _Hold(self, subject, cost, priority)

    def release(self, subject, holder):
        """Frees the concurrency slot(s) `holder` holds (harmless twice: released is False then)."""
        if not self._held:
            raise InvalidArgument("redlimit limiter: release() needs a concurrency limit")
        keys = self.keys(subject)
        script = SCRIPTS["concurrency_release"]
        calls = [lambda i=i: script(self.client, [keys[i]], lease_id=holder) for i in self._held]
        return self._guard(lambda: _sequence(calls, lambda rs: [ReleasedLimit(**r, name=self.limits[i].name) for i, r in zip(self._held, rs)]), self._fails["release"])

    def reserve(self, subject, *, cost=None, ttl_ms=60_000, priority=None):
        """Take an estimate now, settle the actual later: all-or-nothing over every limit, like
        limit() (cost is the estimate). Admitted: Reserved.handle, a string any process settles
        (Python or Node): commit it with the actual use, or cancel it; unsettled, it expires after
        ttl_ms and counts at its estimate. Denied: nothing taken, handle None (retry_after_ms -1:
        the estimate can never fit). A quota with time_zone is reserved in its zone (its rules go
        with the call), and settled in the calendar period it was reserved in: a settle after that
        period has ended gives nothing back to, and charges nothing on, the next one. With the
        subject layout: tiers_reserve on the subject's one key (the handle names that key; its record is
        "<prefix>:{<tag>}:!rsv:<rid>" beside it, as Node's)."""
        script = SCRIPTS["reserve"]
        reservable = [v for v in _group_arg(script, "algo")["values"] if v != "block"]
        for l in self.limits:
            if l.algo not in reservable:
                raise InvalidArgument(f"redlimit reserve: limit {l.name} uses {l.algo}, which cannot give units back: reserve works with {', '.join(reservable)}")
        keys = self.keys(subject)
        costs = self._costs(cost)
        pc = self._priority(priority)
        h = new_handle(keys)
        handle = encode_handle(h)
        if self._tiers:
            tiers = SCRIPTS["tiers_reserve"]
            groups = [{"cost": c} for c in costs]
            if pc is not None:
                for g, share in zip(groups, pc[1]):
                    if share is not None:
                        g["share_ppm"] = share
            return self._guard(lambda: _then(
                self._after_look(lambda: tiers(self.client, [h.record_key, *keys], items=groups, ttl_ms=ttl_ms, count=len(self.limits), specs=self._tiers_specs(), adopt=self._adopt_now(), **self._zone_args(tiers))),
                lambda r: self._decide([dict(x, allowed=x["allowed"] == 1) for x in r[tiers.spec["each"]["name"]]], pc, None, Reserved, handle=handle if r["allowed"] == 1 else None),
            ), self._fail("reserve", pc))
        items = self._items_for(script, costs, pc, None)
        return self._guard(lambda: _then(
            self._after_look(lambda: script(self.client, [h.record_key, *keys], items=items, ttl_ms=ttl_ms, **self._zone_args(script))),
            lambda r: self._decide(r[script.spec["each"]["name"]], pc, None, Reserved, handle=handle if r["allowed"] else None),
        ), self._fail("reserve", pc))

    def commit(self, handle, actual, *, overage="debt", subject=None):
        """Settle a reservation at its actual use (an integer for every limit, or {limit_name: actual};
        limits not named keep their estimates): below the estimate gives the difference back, above
        it charges the overage (overage "debt": later calls wait until it is repaid; "cap": at most
        what is left). Once: a second commit or cancel changes nothing (status "already-settled");
        an unknown, expired or mismatched handle raises ReservationError, a malformed or edited one
        InvalidArgument, before any round trip. subject: the subject the caller expects the handle
        to be for -- a handle of another subject (or another limiter) is a mismatch, refused before
        any round trip. With the subject layout, a handle of a key per limit (made by a limiter of
        the same limits with layout "per-limit", or before the upgrade) is settled on the subject's
        key, which takes its limits' own keys over (tiers_settle with adopt), as Node's."""
        if _is_int(actual):
            actuals = [actual] * len(self.limits)
        elif isinstance(actual, Mapping):
            for k in actual:
                if not any(l.name == k for l in self.limits):
                    raise InvalidArgument(f"redlimit limiter: actual names limit {k}, which this limiter does not have")
            actuals = [actual.get(l.name) for l in self.limits]
        else:
            raise InvalidArgument(f"redlimit limiter: actual must be an integer or {{limit_name: integer}}, got {actual!r:.40}")
        return self._settle(handle, "commit", actuals, overage, subject)

    def cancel(self, handle, *, subject=None):
        """Give a reservation back whole (once, as commit)."""
        return self._settle(handle, "cancel", None, "debt", subject)

    def _tiers_settle_key(self, h, handle, subject):
        """The subject's key tiers_settle settles a handle on (as Node's settleCall): the handle's one
        key, or -- a handle of a key per limit, made before the upgrade -- the subject key whose
        limits' own keys (tiers_settle's adopt rule) are exactly the handle's keys, in order.
        Anything else is a mismatch, before any round trip."""
        expected = self.keys(subject)[0] if subject is not None else None
        if len(h.keys) == 1:
            if expected is not None and expected != h.keys[0]:
                raise ReservationError("mismatch", handle)
            return h.keys[0]
        names = [l.name for l in self.limits]
        key = expected if expected is not None else _subject_of_own_key(h.keys[0], names[0], self._adopt)
        if len(h.keys) != len(names) or key is None or _own_keys(key, self._adopt, names) != h.keys:
            raise ReservationError("mismatch", handle)
        return key

    def _settle(self, handle, mode, actuals, overage, subject):
        h = parse_handle(handle)
        keys = h.keys
        if self._tiers:
            keys = [self._tiers_settle_key(h, handle, subject)]
        elif subject is not None and self.keys(subject) != h.keys:
            raise ReservationError("mismatch", handle)
        # The subject layout: tiers_settle, an actual per limit of the handle's one key; else settle,
        # one per key of the handle (a block key gets 0).
        script = SCRIPTS["tiers_settle" if self._tiers else "settle"]
        n = len(self.limits) if self._tiers else len(h.keys)
        field_name = script.spec["each"]["args"][0]["name"]
        if actuals is None:
            items = [{field_name: 0} for _ in range(n)]
        else:
            if len(actuals) > n:
                raise InvalidArgument(f"redlimit settle: the handle has {n} {'limit' if self._tiers else 'key'}(s), got {len(actuals)} actuals")
            spec = script.spec["each"]["args"][0]
            for i, a in enumerate(actuals):
                _arg("settle", spec, a, f"actual[{i}]")
            items = [{field_name: actuals[i] if i < len(actuals) else None} for i in range(n)]
        names = [l.name for l in self.limits]

        def settled(r):
            status = _SETTLE_STATUS[r["status"]]
            if status in ("unknown", "mismatch"):
                raise ReservationError(status, handle)
            each = r[script.spec["each"]["name"]]
            return Settlement(status, [SettledLimit(**x, name=names[i] if i < len(names) else "block") for i, x in enumerate(each)])

        adopt = {"adopt": self._adopt} if self._tiers else {}
        return self._guard(lambda: _then(script(self.client, [h.record_key, *keys], items=items, mode=mode, overage=overage, **adopt), settled), self._fails[mode])
