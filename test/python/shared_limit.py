"""A Python agent's side of a limit it shares with a Node limiter: builds the keys with the
binding's key helpers (limit_key / block_key) and runs the scripts, sync or with redis.asyncio.
argv: redis_url sync|async steps_json
A step: {"script": "GCRA", "keys": [key_spec, ...], "args": {...}, "items": [...]?, "times": n}
where key_spec is {"limit": name, "id": ..., "hash_tag"?, "scope"?, "scopes"?} or {"block": id, "hash_tag"?}
and every key_spec may carry "prefix". Prints {"keys": [[...] per step], "replies": [[...] per step]}."""
import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "generated", "python"))
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redlimit_scripts as rl  # noqa: E402


def key(spec):
    spec = dict(spec)
    if "block" in spec:
        return rl.block_key(spec.pop("block"), **spec)
    return rl.limit_key(spec.pop("limit"), spec.pop("id"), **spec)


def plan(steps):
    for step in steps:
        yield step, [key(k) for k in step["keys"]]


def run_sync(url, steps):
    client = redis.Redis.from_url(url)
    out = {"keys": [], "replies": []}
    for step, keys in plan(steps):
        script = getattr(rl, step["script"])
        out["keys"].append(keys)
        out["replies"].append([script(client, keys, items=step.get("items"), **step.get("args", {})) for _ in range(step["times"])])
    client.close()
    return out


async def run_async(url, steps):
    client = redis.asyncio.Redis.from_url(url)
    out = {"keys": [], "replies": []}
    for step, keys in plan(steps):
        script = getattr(rl, step["script"])
        replies = []
        for _ in range(step["times"]):
            pending = script(client, keys, items=step.get("items"), **step.get("args", {}))
            assert asyncio.iscoroutine(pending), "an asyncio client gets a coroutine"
            replies.append(await pending)
        out["keys"].append(keys)
        out["replies"].append(replies)
    await client.close()
    return out


url, mode, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(json.dumps(run_sync(url, steps) if mode == "sync" else asyncio.run(run_async(url, steps))))
