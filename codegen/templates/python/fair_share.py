# --- Fair share (hand-written: what src/client/fair-share.ts does around the fair_share script) --
# Many tenants (agents) share one limit (a provider's TPM): within its weighted share a tenant is
# admitted whenever the limit has room; beyond it, only from capacity no other active tenant is
# still owed (the exact guarantee is the script's header). Keys "<prefix>:{<name>}:fair:<key>",
# one per key the script names (state, tenants, active), as a Node createFairShare builds them.

# fair_share's reason codes, as its header states them (0 ... 4); the names Node reports.
_FAIR_REASONS = ("within-share", "idle-capacity", "exhausted", "owed", "full")


@dataclass(frozen=True)
class FairShareDecision(FairShareResult):
    """fair_share's reply, with its reason by name and whether capacity was short."""

    reason_name: str
    """within-share, idle-capacity, exhausted, owed or full."""
    contended: bool
    """Denied because capacity is short: the shared limit is exhausted, or what is left is owed to other tenants."""


class FairShare:
    """One shared limit, fairly shared among tenants; the same name (and prefix) as a Node
    createFairShare shares it with Node. client: redis.Redis or redis.asyncio.Redis (coroutines).

    algo, limit, period_ms: the shared limit (fixed_window or sliding_window: limit units per
    window). weights: tenant -> weight, or a function of the tenant (default_weight for the rest).
    active_window_ms: a tenant counts as active this long after it last asked (default and
    minimum: period_ms). max_tenants: bound on the active set (the script's default when None)."""

    def __init__(self, client, name, *, algo, limit, period_ms, prefix=KEY_LAYOUT["defaultPrefix"], weights=None, default_weight=1, active_window_ms=None, max_tenants=None):
        script = SCRIPTS["fair_share"]
        spec = {a["name"]: a for a in script.spec["args"]}
        self.client = client
        self._async = inspect.iscoroutinefunction(getattr(type(client), "execute_command", None))
        self._failed = _must_land("fair_share")  # no breaker: it says Redis failed, typed
        self.name = _part(name, "name")
        prefix = _named(prefix, "prefix", "prefix")
        self.algo = _arg("fair_share", spec["algo"], algo, "algo")
        self.limit_units = int(_arg("fair_share", spec["limit"], limit, "limit"))
        self.period_ms = int(_arg("fair_share", spec["period_ms"], period_ms, "period_ms"))
        self.active_window_ms = self.period_ms if active_window_ms is None else int(_arg("fair_share", spec["active_window_ms"], active_window_ms, "active_window_ms"))
        if self.active_window_ms < self.period_ms:
            raise InvalidArgument(f"redlimit fair_share: active_window_ms must be at least period_ms ({self.period_ms}), got {self.active_window_ms}")
        self.max_tenants = None if max_tenants is None else int(_arg("fair_share", spec["max_tenants"], max_tenants, "max_tenants"))
        self.default_weight = int(_arg("fair_share", spec["weight"], default_weight, "default_weight"))
        if weights is not None and not callable(weights):
            if not isinstance(weights, Mapping):
                raise InvalidArgument("redlimit fair_share: weights must be {tenant: weight} or a function of the tenant")
            for tenant, w in weights.items():
                _arg("fair_share", spec["weight"], w, f"weights[{tenant!r}]")
        self.weights = weights
        self._weight_spec = spec["weight"]
        base = f"{prefix}:{{{self.name}}}:fair"
        self.keys = [f"{base}:{k['name']}" for k in script.spec["keys"]]

    def _weight(self, tenant):
        w = self.weights(tenant) if callable(self.weights) else (self.weights or {}).get(tenant)
        if w is None:
            return self.default_weight
        _arg("fair_share", self._weight_spec, w, f"weight of {tenant!r}")
        return w

    def limit(self, tenant, *, cost=1, now_ms=None):
        """Decide one call of `tenant` taking `cost` units of the shared limit. When Redis cannot
        answer: RedisUnavailable (a redis-py RedisError, .cause redis-py's error), as Node's."""
        script = SCRIPTS["fair_share"]
        weight = self._weight(tenant)

        def decision(r):
            name = _FAIR_REASONS[r["reason"]]
            return FairShareDecision(**r, reason_name=name, contended=name in ("exhausted", "owed"))

        return _guarded(None, self._async, lambda: _then(script(
            self.client, self.keys, algo=self.algo, limit=self.limit_units, period_ms=self.period_ms, tenant=tenant,
            active_window_ms=self.active_window_ms, cost=cost, weight=weight, max_tenants=self.max_tenants, now_ms=now_ms,
        ), decision), self._failed)
