"""A Python agent on the generated binding's typed API (Limiter, FairShare), driven by the Node
test one JSON command a line on stdin; it answers one JSON line each: {"ok": result} or
{"error": {"type", "message", "status"?}}. argv: redis_url sync|async

Commands ({"op": ..., ...}):
  limiter      id, limits: [Limit kwargs], prefix, priorities?, blocks?, layout?  -> creates a Limiter
  fair         id, name, prefix, algo, limit, period_ms, weights?          -> creates a FairShare
  keys         limiter, subject                                            -> [key]
  limit        limiter, subject, cost?, priority?                          -> Decision
  peek         limiter, subject, cost?, priority?                          -> Decision (takes nothing)
  refund       limiter, subject, cost?                                     -> [RefundedLimit]
  reset        limiter, subject, limits?, scopes?                          -> None
  reserve      limiter, subject, cost?, ttl_ms?, priority?                 -> Reserved
  commit       limiter, handle, actual, overage?, subject?                 -> Settlement
  release      limiter, subject, holder                                    -> [ReleasedLimit]
  cancel       limiter, handle                                             -> Settlement
  fair_limit   fair, tenant, cost?                                         -> FairShareDecision
  reserve_many limiter, subject, costs: [cost]    all at once (asyncio.gather) -> [Reserved]
  commit_many  limiter, handles, actuals          all at once                 -> [Settlement]
  crowd        limiter, subject, tasks            (asyncio) tasks all call limit() at once, then each
               holds a slot with hold() until it has had one            -> what happened
  nested_hold  limiter, subject   holds the limiter's one slot, tries to take a second, then takes
               it again after leaving (with / async with)                 -> what happened
  tz_rules     time_zone, now_ms                                           -> str
  subject_key  limits, id, prefix?, hash_tag?                              -> str
  tamper       handle, how                        a bad handle made from a good one -> str
  adopting     limiter    once its adoption scan (if it started one) is over -> Limiter.adopting
A subject is an id string or {"id", "hash_tag"?, "scopes"?}."""
import asyncio
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "generated", "python"))
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redlimit_scripts as rl  # noqa: E402

url, mode = sys.argv[1], sys.argv[2]
client = redis.asyncio.Redis.from_url(url) if mode == "async" else redis.Redis.from_url(url)
limiters, fairs = {}, {}


async def done(value):
    """A call's answer: awaited when the client is asyncio (and then it must be a coroutine)."""
    if mode == "async":
        assert asyncio.iscoroutine(value), "an asyncio client gets a coroutine"
        return await value
    assert not asyncio.iscoroutine(value), "a sync client gets the answer"
    return value


def subject(s):
    return s if isinstance(s, str) else rl.Subject(s["id"], s.get("hash_tag"), s.get("scopes"))


def tamper(handle, how):
    if how == "edited-keys":  # one character of the keys changed: the check no longer matches
        head, rid, keys, check = handle.split(".")
        return ".".join([head, rid, keys[:-1] + ("A" if keys[-1] != "A" else "B"), check])
    if how == "cut":
        return handle[: len(handle) // 2]
    h = rl.parse_handle(handle)
    if how == "unknown":  # well formed, same keys, an id never reserved
        return rl.encode_handle(rl.Handle("0" * 32, h.keys, ""))
    if how == "reordered":  # the same reservation id, its keys in another order
        return rl.encode_handle(rl.Handle(h.rid, list(reversed(h.keys)), ""))
    raise ValueError(how)


async def crowd(limiter, who, tasks):
    # Round one: every task asks at once; those admitted hold their slot until all have asked.
    first = await asyncio.gather(*(limiter.limit(who) for _ in range(tasks)))
    admitted = [d for d in first if d.allowed]
    out = {
        "first_allowed": len(admitted),
        "first_denied_by": sorted({d.denied_by for d in first if not d.allowed}),
        "first_retry_positive": all(d.retry_after_ms > 0 for d in first if not d.allowed),
        "holders_distinct": len({d.holder for d in admitted}) == len(admitted),
    }
    released = await asyncio.gather(*(limiter.release(who, d.holder) for d in admitted))
    out["released"] = [r[0].released for r in released]
    # Round two: every task holds a slot once, with hold(); a denied task tries again.
    held, most, denials, calls = 0, 0, 0, 0

    async def one():
        nonlocal held, most, denials, calls
        while True:
            calls += 1
            try:
                async with limiter.hold(who):
                    held += 1
                    most = max(most, held)
                    await asyncio.sleep(0.002)  # hold it across other tasks' calls
                    held -= 1
                return
            except rl.RateLimited as e:
                assert e.decision.denied_by is not None
                denials += 1
                await asyncio.sleep(0.002)

    await asyncio.gather(*(one() for _ in range(tasks)))
    out.update({"most_held": most, "second_admitted": calls - denials, "second_denied": denials})
    return out


def nested_hold_sync(lim, who):
    with lim.hold(who) as outer:
        try:
            with lim.hold(who):
                inner = "admitted"
        except rl.RateLimited as e:
            inner = e.decision.denied_by
    with lim.hold(who) as again:
        return {"outer": outer.holder is not None, "inner": inner, "again": again.allowed}


async def nested_hold_async(lim, who):
    async with lim.hold(who) as outer:
        try:
            async with lim.hold(who):
                inner = "admitted"
        except rl.RateLimited as e:
            inner = e.decision.denied_by
    async with lim.hold(who) as again:
        return {"outer": outer.holder is not None, "inner": inner, "again": again.allowed}


async def run(cmd):
    op = cmd["op"]
    if op == "limiter":
        limits = [rl.Limit(**l) for l in cmd["limits"]]
        layout = {"layout": cmd["layout"]} if "layout" in cmd else {}
        limiters[cmd["id"]] = rl.Limiter(client, limits, prefix=cmd["prefix"], priorities=cmd.get("priorities"), blocks=cmd.get("blocks", False), **layout)
        return None
    if op == "fair":
        fairs[cmd["id"]] = rl.FairShare(
            client, cmd["name"], prefix=cmd["prefix"], algo=cmd["algo"], limit=cmd["limit"], period_ms=cmd["period_ms"], weights=cmd.get("weights")
        )
        return None
    if op == "subject_key":
        extra = {k: cmd[k] for k in ("prefix", "hash_tag") if k in cmd}
        return rl.subject_key(cmd["limits"], cmd["id"], **extra)
    if op == "tz_rules":
        return rl.tz_rules(cmd["time_zone"], cmd["now_ms"])
    if op == "tamper":
        return tamper(cmd["handle"], cmd["how"])
    if op == "fair_limit":
        return await done(fairs[cmd["fair"]].limit(cmd["tenant"], cost=cmd.get("cost", 1)))
    lim = limiters[cmd["limiter"]]
    if op == "keys":
        return lim.keys(subject(cmd["subject"]))
    if op == "adopting":
        worker = lim._adoption.worker if lim._adoption is not None else None
        if worker is not None:
            await worker if mode == "async" else await asyncio.get_running_loop().run_in_executor(None, worker.join)
        return lim.adopting
    if op == "limit":
        return await done(lim.limit(subject(cmd["subject"]), cost=cmd.get("cost"), priority=cmd.get("priority")))
    if op == "peek":
        return await done(lim.peek(subject(cmd["subject"]), cost=cmd.get("cost", 0), priority=cmd.get("priority")))
    if op == "refund":
        return await done(lim.refund(subject(cmd["subject"]), cost=cmd.get("cost")))
    if op == "reset":
        return await done(lim.reset(subject(cmd["subject"]), limits=cmd.get("limits"), scopes=cmd.get("scopes")))
    if op == "reserve":
        return await done(lim.reserve(subject(cmd["subject"]), cost=cmd.get("cost"), ttl_ms=cmd.get("ttl_ms", 60_000), priority=cmd.get("priority")))
    if op == "commit":
        who = subject(cmd["subject"]) if "subject" in cmd else None
        return await done(lim.commit(cmd["handle"], cmd["actual"], overage=cmd.get("overage", "debt"), subject=who))
    if op == "release":
        return await done(lim.release(subject(cmd["subject"]), cmd["holder"]))
    if op == "cancel":
        return await done(lim.cancel(cmd["handle"]))
    if op == "reserve_many":
        calls = [lambda c=c: lim.reserve(subject(cmd["subject"]), cost=c) for c in cmd["costs"]]
    elif op == "commit_many":
        calls = [lambda h=h, a=a: lim.commit(h, a) for h, a in zip(cmd["handles"], cmd["actuals"])]
    elif op == "nested_hold":
        who = subject(cmd["subject"])
        return await nested_hold_async(lim, who) if mode == "async" else nested_hold_sync(lim, who)
    elif op == "crowd":
        assert mode == "async", "crowd runs asyncio tasks"
        return await crowd(lim, subject(cmd["subject"]), cmd["tasks"])
    else:
        raise ValueError(f"unknown op {op}")
    if mode == "async":
        return await asyncio.gather(*(c() for c in calls))
    return [c() for c in calls]


def plain(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else [plain(v) for v in value] if isinstance(value, list) else value


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            answer = {"ok": plain(await run(json.loads(line)))}
        except (rl.InvalidArgument, redis.exceptions.ResponseError) as e:
            answer = {"error": {"type": type(e).__name__, "message": str(e), "status": getattr(e, "status", None)}}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    if mode == "async":
        await client.close()


asyncio.run(main())
