"""Driven by test/python-failure.test.ts: Limiters of each failure policy on one real redis-server
the test kills and restarts. Reads a phase name per line on stdin, prints one JSON line per phase.
argv: the generated binding's directory, the server's port, "sync" or "async", a key prefix, the
breakers' reset timeout (ms)."""
import asyncio
import json
import sys
import time

sys.path.insert(0, sys.argv[1])
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redlimit_scripts as rl  # noqa: E402

PORT, MODE, PREFIX, RESET_MS = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])


class Counting(redis.connection.Connection):
    """redis-py's own connection, counting the connections it opens (round trips a dead server refuses)."""

    attempts = 0

    def connect(self):
        Counting.attempts += 1
        return super().connect()


class AsyncCounting(redis.asyncio.connection.Connection):
    attempts = 0

    async def connect(self):
        AsyncCounting.attempts += 1
        return await super().connect()


counter = AsyncCounting if MODE == "async" else Counting
pool = (redis.asyncio.ConnectionPool if MODE == "async" else redis.ConnectionPool)(host="127.0.0.1", port=PORT, connection_class=counter, socket_connect_timeout=2, socket_timeout=5)
client = (redis.asyncio.Redis if MODE == "async" else redis.Redis)(connection_pool=pool)
GCRA = [rl.Limit("m", "gcra", limit=5, period_ms=3_600_000)]
TIERS = [rl.Limit("m", "gcra", limit=5, period_ms=3_600_000), rl.Limit("d", "quota", limit=100, unit="day")]
SLOTS = [rl.Limit("c", "concurrency", limit=2, period_ms=60_000)]


def breaker():
    return rl.Breaker(consecutive_failures=3, reset_timeout_ms=RESET_MS, jitter=0)


shared = breaker()
limiters = {
    "raise": rl.Limiter(client, GCRA, prefix=PREFIX, breaker=shared),
    "raise-too": rl.Limiter(client, GCRA, prefix=PREFIX, breaker=shared),  # the same breaker
    "open": rl.Limiter(client, GCRA, prefix=PREFIX + "o", on_redis_failure="open", breaker=breaker()),
    "closed": rl.Limiter(client, GCRA, prefix=PREFIX + "x", on_redis_failure="closed", breaker=breaker()),
    "tiers-open": rl.Limiter(client, TIERS, prefix=PREFIX + "t", on_redis_failure="open", breaker=breaker()),
    "slots-open": rl.Limiter(client, SLOTS, prefix=PREFIX + "c", on_redis_failure="open", breaker=breaker()),
    "slots-closed": rl.Limiter(client, SLOTS, prefix=PREFIX + "c", on_redis_failure="closed", breaker=breaker()),
}


async def settle(value):
    return await value if asyncio.iscoroutine(value) else value


async def attempt(fn):
    """What a call answered: a decision's fields, or the error it raised (its class, and its cause's)."""
    try:
        d = await settle(fn())
    except rl.RedisUnavailable as e:
        return {"error": "RedisUnavailable", "redis_error": isinstance(e, redis.exceptions.RedisError), "cause": type(e.cause).__name__ if e.cause is not None else None}
    except rl.RateLimited as e:
        return {"error": "RateLimited", "source": e.decision.source, "message": str(e)}
    except Exception as e:  # anything else reaching the caller fails the test
        return {"error": type(e).__name__, "message": str(e)[:200]}
    if isinstance(d, rl.Decision):
        return {"allowed": d.allowed, "remaining": d.remaining, "source": d.source, "retry": d.retry_after_ms, "limits": len(d.limits), "handle": getattr(d, "handle", "-")}
    return {"value": repr(d)[:80]}


async def hold(lim):
    if MODE == "async":
        async with lim.hold("h") as d:
            return d
    with lim.hold("h") as d:
        return d


async def phase(name):
    out = {}
    if name == "up":
        for key, lim in limiters.items():
            out[key] = [await attempt(lambda lim=lim: lim.limit("a")) for _ in range(2)]
        out["breakers"] = {k: lim.breaker.state for k, lim in limiters.items()}
    elif name == "down":
        # Three failures in a row open each breaker; the calls after them make no round trip.
        for key in ("raise", "open", "closed", "tiers-open", "slots-open"):
            lim = limiters[key]
            calls = []
            for i in range(8):
                before = counter.attempts
                calls.append(dict(await attempt(lambda: lim.limit("a")), connects=counter.attempts - before, state=lim.breaker.state))
            out[key] = calls
        # The shared breaker, opened by "raise", refuses its other limiter at once.
        before = counter.attempts
        out["raise-too"] = dict(await attempt(lambda: limiters["raise-too"].limit("a")), connects=counter.attempts - before)
        lim = limiters["open"]
        out["peek"] = await attempt(lambda: lim.peek("a"))
        out["reserve"] = await attempt(lambda: lim.reserve("a", cost=2))
        # fail-open hold: admitted without a slot, and nothing to release on the way out.
        unguarded = rl.Limiter(client, SLOTS, prefix=PREFIX + "c", on_redis_failure="open", breaker=False)
        before = counter.attempts
        out["hold-open"] = dict(await attempt(lambda: hold(unguarded)), connects=counter.attempts - before)
        # The calls that must land say they did not.
        out["refund"] = await attempt(lambda: lim.refund("a"))
        out["reset"] = await attempt(lambda: lim.reset("a"))
        out["commit"] = await attempt(lambda: lim.commit(rl.encode_handle(rl.new_handle([lim.keys("a")[0]])), 1))
        # fail-closed hold: RateLimited, saying why.
        lim = limiters["slots-closed"]
        for _ in range(3):
            await attempt(lambda: lim.limit("h"))
        out["hold-closed"] = await attempt(lambda: hold(lim))
        # A failed probe (still down once the wait is over): open again for twice the wait.
        time.sleep(RESET_MS / 1000 + 0.1)
        lim = limiters["closed"]
        out["probe-state"] = lim.breaker.state
        out["probe"] = await attempt(lambda: lim.limit("a"))
        out["after-probe"] = lim.breaker.stats()
    elif name == "recover":
        time.sleep(2 * RESET_MS / 1000 + 0.2)
        for key in ("raise", "open", "closed"):
            lim = limiters[key]
            out[key] = [dict(await attempt(lambda: lim.limit("b")), state=lim.breaker.state) for _ in range(3)]
    return out


async def main():
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        print(json.dumps(await phase(name)), flush=True)
    if MODE == "async":
        await client.close()


asyncio.run(main())
