"""Runs a fixed call sequence through the generated Python binding and prints the replies as JSON.
argv: redis_url key_prefix"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "generated", "python"))
import redis  # noqa: E402
import redlimit_scripts as rl  # noqa: E402

client = redis.Redis.from_url(sys.argv[1])
p = sys.argv[2]
t0 = 1_764_000_000_000
out = []
client.script_flush()  # the first call of each script goes through NOSCRIPT -> EVAL
for i, dt in enumerate([0, 0, 0, 50, 400, 401]):
    out.append(rl.GCRA(client, [p + "g"], limit=10, period_ms=1000, burst=3, cost=1, now_ms=t0 + dt))
items = [
    {"algo": "sliding_log", "limit": 2, "period_ms": 60000, "cost": 1},
    {"algo": "quota", "limit": 1000, "unit": "month", "cost": 300},
]
for dt in [0, 1, 2, 3]:
    out.append(rl.MULTI(client, ["{%s}:rpm" % p, "{%s}:tpm" % p], items=items, now_ms=t0 + dt))
try:
    rl.GCRA(client, [p + "g"], limit=0, period_ms=1000)
except rl.InvalidArgument as e:
    out.append({"error": str(e)})
print(json.dumps(out))
