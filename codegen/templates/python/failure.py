# --- When Redis cannot answer (Node's src/client/failure.ts, policy.ts and breaker.ts) -----------


class RedisUnavailable(RedisError):
    """Redis could not answer a Limiter call: a connection or timeout error, LOADING, BUSY, OOM,
    READONLY, a Cluster slot on the move, any reply redis-py could not read -- or the limiter's
    breaker is open, and no call was made (cause is None then). A redis-py RedisError: `except
    redis.RedisError` still catches it (`except redis.ConnectionError` no longer does); cause is
    redis-py's error."""

    def __init__(self, message, cause=None):
        super().__init__(message)
        self.cause = cause


# A refused argument or a key of the caller's holding something else: the caller's mistake (a
# typed error back to it); the breaker hears nothing and the failure policy is not asked, so no
# input can push other callers off Redis. By the error's code, never by its wording.
_CALLER_CODES = ("BADARG", "WRONGTYPE", "WRONGSTATE")
# A Cluster slot on the move: Redis answered, so it is no failure of Redis (the breaker hears
# nothing), but this call still takes the failure path. redis-py's Cluster clients follow MOVED,
# ASK and TRYAGAIN themselves and raise a plain ClusterError ("TTL exhausted.", the only place
# they raise that class itself) when the redirects outlast their tries.
_MOVING_CODES = ("MOVED", "ASK", "TRYAGAIN")
# redis-py's Cluster clients raise these outside RedisError: no node answers (RedisClusterException:
# "Redis Cluster cannot be connected"), a slot no node serves (SlotNotCoveredError).
_CLUSTER_DOWN = (_redis_exceptions.RedisClusterException,) if hasattr(_redis_exceptions, "RedisClusterException") else ()
_REDIRECTS_EXHAUSTED = getattr(_redis_exceptions, "ClusterError", None)


def _failure_kind(e):
    """"caller", "moving" or "redis" (as Node's classify), or None: not a Redis error (a bug to raise as it is)."""
    if isinstance(e, RedisUnavailable):
        return "redis"
    if isinstance(e, InvalidArgument):
        return "caller"
    if isinstance(e, ResponseError):
        code = str(e).split(" ", 1)[0]
        if code in _CALLER_CODES:
            return "caller"
        if code in _MOVING_CODES or type(e).__name__ in ("AskError", "MovedError", "TryAgainError"):
            return "moving"
        return "redis"
    if _REDIRECTS_EXHAUSTED is not None and type(e) is _REDIRECTS_EXHAUSTED:
        return "moving"
    if isinstance(e, (RedisError, OSError, asyncio.TimeoutError) + _CLUSTER_DOWN):
        return "redis"
    return None


# Every Breaker, so a forked child gets fresh locks (one held by another thread of the parent at the
# fork would never be released in the child).
_BREAKERS = weakref.WeakSet()


def _breakers_after_fork():
    for b in list(_BREAKERS):
        b._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_breakers_after_fork)


class Breaker:
    """A circuit breaker over one Redis, as the Node limiter's (closed -> open after
    consecutive_failures Redis failures in a row; open -> half-open after reset_timeout_ms, doubled
    after each failed probe up to max_reset_timeout_ms, plus up to `jitter` of it at random so a
    fleet does not probe in lockstep; half-open lets one call through at a time and closes after
    successes_to_close of them succeed, any failure opens it again). While it is open, calls make no
    round trip: decisions answer by the limiter's on_redis_failure at once. One breaker may be
    shared by the limiters of one Redis (pass it to each). Thread-safe; state: "closed", "open" or
    "half-open"; stats() for a health check."""

    def __init__(self, *, consecutive_failures=5, reset_timeout_ms=1_000, max_reset_timeout_ms=30_000, jitter=0.2, successes_to_close=2):
        for name, value, low in (("consecutive_failures", consecutive_failures, 1), ("reset_timeout_ms", reset_timeout_ms, 1), ("max_reset_timeout_ms", max_reset_timeout_ms, 1), ("successes_to_close", successes_to_close, 1)):
            if not _is_int(value) or value < low:
                raise InvalidArgument(f"redlimit breaker: {name} must be an integer of at least {low}, got {value!r:.40}")
        if max_reset_timeout_ms < reset_timeout_ms:
            raise InvalidArgument(f"redlimit breaker: max_reset_timeout_ms ({max_reset_timeout_ms}) must be at least reset_timeout_ms ({reset_timeout_ms})")
        if isinstance(jitter, bool) or not isinstance(jitter, (int, float)) or not 0 <= jitter <= 1:
            raise InvalidArgument(f"redlimit breaker: jitter must be a number from 0 to 1, got {jitter!r:.40}")
        self.consecutive_failures = consecutive_failures
        self.reset_timeout_ms = reset_timeout_ms
        self.max_reset_timeout_ms = max_reset_timeout_ms
        self.jitter = jitter
        self.successes_to_close = successes_to_close
        self._lock = threading.Lock()
        _BREAKERS.add(self)
        self._state = "closed"
        self._failures = 0  # in a row
        self._successes = 0  # of probes, half-open
        self._wait_ms = reset_timeout_ms  # the next open's wait
        self._reopen_at = 0.0
        self._probe_since = None  # a probe in flight since (monotonic s), half-open
        self._ok = 0
        self._totals = {"failures": 0, "rejected": 0, "opens": 0}
        self._last_error = None

    @staticmethod
    def _now():
        return time.monotonic()

    @property
    def state(self):
        with self._lock:
            self._tick()
            return self._state

    def _tick(self):
        if self._state == "open" and self._now() >= self._reopen_at:
            self._state, self._successes, self._probe_since = "half-open", 0, None

    def acquire(self):
        """Whether a call may go to Redis now (half-open: one at a time). Each acquire is followed
        by exactly one success(), failure() or release()."""
        if self._state == "closed":  # the common case, without the lock (one attribute read)
            return True
        with self._lock:
            self._tick()
            if self._state == "closed":
                return True
            # A probe that never reported (its coroutine never awaited) does not hold the breaker
            # half-open forever: after the longest wait, another call probes.
            if self._state == "half-open" and (self._probe_since is None or self._now() - self._probe_since > self.max_reset_timeout_ms / 1000):
                self._probe_since = self._now()
                return True
            self._totals["rejected"] += 1
            return False

    def success(self):
        if self._state == "closed" and not self._failures:
            # The common case, without the lock: nothing changes but a count (which threads racing
            # here may undercount: it is a statistic).
            self._ok += 1
            return
        with self._lock:
            self._ok += 1
            self._failures = 0
            if self._state == "half-open":
                self._probe_since = None
                self._successes += 1
                if self._successes >= self.successes_to_close:
                    self._state, self._wait_ms = "closed", self.reset_timeout_ms

    def failure(self, error=None):
        with self._lock:
            self._totals["failures"] += 1
            self._last_error = None if error is None else f"{type(error).__name__}: {error}"[:200]
            self._failures += 1
            if self._state == "half-open":
                # A failed probe: open again, waiting twice as long as last time (up to the ceiling).
                self._wait_ms = min(self._wait_ms * 2, self.max_reset_timeout_ms)
                self._open()
            elif self._state == "closed" and self._failures >= self.consecutive_failures:
                self._open()

    def release(self):
        """An acquired call that told nothing of Redis (the caller's own error, a slot on the move)."""
        with self._lock:
            if self._state == "half-open":
                self._probe_since = None

    def _open(self):
        self._state, self._probe_since = "open", None
        self._reopen_at = self._now() + self._wait_ms * (1 + self.jitter * random.random()) / 1000
        self._totals["opens"] += 1

    def _until_probe_ms(self):
        """ms until an open breaker lets a probe through (at least 1); under the lock."""
        return max(1, math.ceil((self._reopen_at - self._now()) * 1000))

    def retry_after_ms(self):
        """How long a caller Redis failed just now should wait before trying again (Node's
        retryAfterMs): until the next probe while open, else one reset timeout (a failure has just
        happened: the breaker may open)."""
        with self._lock:
            self._tick()
            return self._until_probe_ms() if self._state == "open" else self.reset_timeout_ms

    def stats(self):
        with self._lock:
            self._tick()
            return {
                "state": self._state,
                "consecutive_failures": self._failures,
                "total_successes": self._ok,
                "total_failures": self._totals["failures"],
                "total_rejected": self._totals["rejected"],
                "opens": self._totals["opens"],
                "retry_after_ms": self._until_probe_ms() if self._state == "open" else 0,
                "last_error": self._last_error,
            }


def _later(is_async, fn):
    """fn()'s answer (or its exception) now, or on an asyncio client when the call is awaited."""
    if is_async:
        async def run():
            return fn()
        return run()
    return fn()


def _heard(breaker, e):
    """e's kind (_failure_kind); the breaker (if any) counts a Redis failure and hears nothing else."""
    kind = _failure_kind(e)
    if breaker is not None:
        if kind == "redis":
            breaker.failure(e)
        else:
            breaker.release()
    return kind


def _guarded(breaker, is_async, call, failed):
    """call() -- a call's round trips and the reading of their replies: its answer, or a coroutine
    of it on an asyncio client -- through the breaker (None: none); when Redis fails, failed(error)
    answers instead (error None: the open breaker refused the call, nothing was sent). The caller's
    own errors, and any error that is not Redis's, are raised as they are."""
    if breaker is not None and not breaker.acquire():
        return _later(is_async, lambda: failed(None))
    try:
        value = call()
    except Exception as e:
        if _heard(breaker, e) in (None, "caller"):
            raise
        return _later(is_async, lambda e=e: failed(e))
    except BaseException:
        # Cancelled or interrupted (a gevent timeout, KeyboardInterrupt): nothing learnt of Redis,
        # but a probe's slot is freed.
        if breaker is not None:
            breaker.release()
        raise
    if not inspect.isawaitable(value):
        if breaker is not None:
            breaker.success()
        return value

    async def settle():
        try:
            answer = await value
        except Exception as e:
            if _heard(breaker, e) in (None, "caller"):
                raise
            return failed(e)
        except BaseException:
            # Cancelled (asyncio.wait_for, a task's cancel): nothing learnt of Redis, and a probe's
            # slot is freed -- else the breaker would refuse every call until the probe timed out.
            if breaker is not None:
                breaker.release()
            raise
        if breaker is not None:
            breaker.success()
        return answer
    return settle()


def _unavailable(what, e, breaker=None):
    """The RedisUnavailable of a call `what` Redis failed (e: redis-py's error; None: the open
    breaker refused the call)."""
    if e is None:
        return RedisUnavailable(f"redlimit {what}: Redis unavailable: the breaker is open, no call was made (the next in {breaker.retry_after_ms()} ms)")
    return RedisUnavailable(f"redlimit {what}: Redis could not answer: {type(e).__name__}: {e}", e)


def _must_land(what, breaker=None):
    """failed() of a call that must land or say so: raises RedisUnavailable."""
    def failed(e):
        raise _unavailable(what, e, breaker) from e
    return failed


_ON_REDIS_FAILURE = ("raise", "open", "closed")
# Fail-closed's retry_after_ms without a breaker (with one: until it lets a call through).
_CLOSED_RETRY_MS = 1_000
