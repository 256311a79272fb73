# --- Reservation handles (hand-written: the format src/client/reservations.ts defines) ----------
# A handle is a string any process settles, Node or Python: "rsv1.<rid>.<keys>.<check>" -- rid is
# 128 random bits (hex), keys the reservation's state keys (base64url of their JSON array, in the
# order they were reserved), check the first 64 bits of SHA-256 over the rest (base64url). The
# check is not a secret: it catches a handle cut short, mangled or edited before any round trip;
# the script catches the rest (a record made for other keys is a mismatch, no record is unknown).
# The record key is derived from the keys: "<prefix>:{<tag>}:!rsv:<rid>", in their hash slot.

_HANDLE_VERSION = "rsv1"
_HANDLE = re.compile(r"rsv1\.([0-9a-f]{32})\.([A-Za-z0-9_-]{2,65536})\.([A-Za-z0-9_-]{11})")


class ReservationError(InvalidArgument):
    """A settle found no reservation to settle: status "unknown" (never made, expired -- it counted
    at its estimate -- or lost in a failover) or "mismatch" (the handle was made for other keys)."""

    def __init__(self, status, handle):
        self.status = status
        self.handle = handle
        super().__init__(
            "redlimit settle: "
            + (
                "no live reservation for this handle: never made, expired (it counted at its estimate), or made on the other side of a failover"
                if status == "unknown"
                else "this handle was not made for these keys (another subject, another limiter, or edited)"
            )
        )


@dataclass(frozen=True)
class Handle:
    """What a reservation handle names: its id, its state keys (in reserve order) and its record key."""

    rid: str
    keys: List[str]
    record_key: str


def _refuse_handle(detail):
    raise InvalidArgument(f"redlimit settle: {detail}")


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _handle_check(rest):
    return _b64url(hashlib.sha256(rest.encode("utf-8")).digest()[:8])


def _tagged(key):
    """"<prefix>:{<tag>}" of a key the limiter built (every key of one subject shares it), or None."""
    open_ = key.find("{")
    close = -1 if open_ < 1 else key.find("}", open_ + 2)
    return None if close < 0 or key[open_ - 1] != ":" else key[: close + 1]


def _handle(rid, keys):
    base = _tagged(keys[0])
    if base is None:
        _refuse_handle(f"key {json.dumps(keys[0][:80])} has no {{hash tag}}")
    if any(_tagged(k) != base for k in keys):
        _refuse_handle("the keys of a handle must share one prefix and {hash tag}")
    return Handle(rid, list(keys), f"{base}:!rsv:{rid}")


def new_handle(keys):
    """A new reservation on these state keys (all of one subject): a fresh random id."""
    if not keys:
        raise InvalidArgument("redlimit reserve: a reservation needs at least one key")
    return _handle(secrets.token_hex(16), keys)


def encode_handle(h):
    """The handle string of a Handle (what reserve answers, what commit and cancel take)."""
    keys = json.dumps(list(h.keys), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    rest = f"{_HANDLE_VERSION}.{h.rid}.{_b64url(keys)}"
    return f"{rest}.{_handle_check(rest)}"


def parse_handle(handle):
    """The reservation a handle names; InvalidArgument for anything malformed or edited."""
    if not isinstance(handle, str):
        _refuse_handle(f"a reservation handle is a string, got {type(handle).__name__}")
    m = _HANDLE.fullmatch(handle)
    if not m:
        _refuse_handle(f"not a reservation handle ({_HANDLE_VERSION}.<rid>.<keys>.<check>): {json.dumps(handle[:40])}")
    if _handle_check(handle[: handle.rindex(".")]) != m.group(3):
        _refuse_handle("the handle was altered (its check does not match)")
    try:
        raw = m.group(2)
        keys = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8"))
    except ValueError:
        _refuse_handle("the handle does not hold its keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        _refuse_handle("the handle does not hold its keys")
    return _handle(m.group(1), keys)
