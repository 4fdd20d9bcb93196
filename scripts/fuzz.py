#!/usr/bin/env python3
"""Contract fuzzing of the local API with Schemathesis (pinned in scripts/pins.env, installed into
.local/venv by scripts/setup.sh), against openapi.yaml.

    .local/venv/bin/python scripts/fuzz.py                       # what tests/py/test_fuzz.py runs
    FUZZ_EXAMPLES=500 .local/venv/bin/python scripts/fuzz.py     # heavier: 500 examples per operation
    .local/venv/bin/python scripts/fuzz.py --tokens admin --url http://127.0.0.1:3000   # a running API

Without `--url` it starts `target/debug/local-api` (`cargo build --bins` first) on a fresh table in
DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
set), with the dev clock on, and:

1. makes fixtures through the API (a check-in campaign, tiers, a multiplier, the referral program,
   contests and draws running, upcoming and ended, coupon codes, points, holds, a team, a referral
   code, a won coupon and a fulfilment). Schemathesis draws path ids, user ids, codes, grant keys
   and amounts from them three times in four (dictionaries), so requests get past "404 unknown";
2. per token kind — member, service, admin, on the same server — runs `st run`: first the stateful
   phase on the flows the `links` of openapi.yaml chain (hold → capture / release, draw → spin,
   contest → join), then every phase (coverage, fuzzing, stateful) on every operation; a fixed seed,
   one worker, FUZZ_EXAMPLES (default 50) examples per operation (twice that for the flows);
3. stops the server and runs `campaign-ops audit` on the table (every invariant still holds);
4. starts a local API on the same table behind a relay to DynamoDB Local, cuts the relay, and
   fuzzes every operation again (a fifth of the examples): what needs the store must be a
   conforming 503 with `Retry-After`.

Checks (CHECKS below): every Schemathesis check but `unsupported_method`, with our statuses, plus
two of ours: a 503 carries `Retry-After`, and a problem's `type` is one its response lists in
`x-problem-types`. It also fails if a flow above was never followed through its link.

Exit status 0 when everything passed. The reports (failures with curl reproductions) are printed
without their warnings and kept whole in .local/fuzz/<run>.txt, with the generated configuration
(<token>.toml), the ndjson events and the servers' logs (server.log, server-store-down.log).

This file is also the Schemathesis hooks module: loaded by `st`, it registers our two checks and
makes the operations the spec's links start from stateful roots (see the end of the file).
"""

import argparse
import base64
import collections
import datetime as dt
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT / "openapi.yaml"
LOCAL_API = ROOT / "target" / "debug" / "local-api"
OPS = ROOT / "target" / "debug" / "campaign-ops"
ST = ROOT / ".local" / "venv" / "bin" / "st"
OUT = ROOT / ".local" / "fuzz"
START_TIMEOUT = 60
SEED = 20261124
DEFAULT_EXAMPLES = 50
RUN_ORDER = ("member", "service", "admin")  # the admin run last: it may cancel or change fixtures

CLAIMS = {
    "member": {"sub": "fuzz-member", "token_use": "id"},
    "admin": {"sub": "fuzz-admin", "cognito:groups": ["admin"]},
    # Every scope a service route takes (openapi.yaml, components.securitySchemes.service).
    "service": {
        "sub": "fuzz-shop",
        "client_id": "fuzz-shop",
        "token_use": "access",
        "scope": "campaign/points.write campaign/members.write campaign/coupons",
    },
    # Fixtures only: a second member, whose team and referral code the member can join and claim.
    "friend": {"sub": "fuzz-friend", "token_use": "id"},
}

# Which checks, and why. Every built-in check runs (`checks.enabled = true`), with these changes:
CHECKS = """
[checks]
enabled = true

# A 503 (the store unavailable, throttled or contended after retries) is allowed with a
# `Retry-After` header (our check `retry_after_on_503`); a 500 never.
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

# A method the spec does not list on a path (TRACE /v1/points) gets API Gateway's own
# `404 {"message":"Not Found"}`: an HTTP API answers so for any route it does not have, and the
# local API does what API Gateway does. The check wants 405, which API Gateway never sends.
[checks.unsupported_method]
enabled = false

# A schema-valid request may still break a rule no schema states: a make-up date outside the
# window, a contest starting too soon, a name an admin reserved (422 by our rules).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "503"]

# Schema-invalid requests must be refused with a 4xx our rules name (413: a body over 16 KiB).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429", "503"]

# Cursors are opaque: no schema tells a valid one, and a bad cursor is 400 by our rules.
[[operations]]
include-operation-id = ["getPointsLedger", "getMyReferrals", "getAdminMemberReferrals", "getMyDrawSpins"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "503"]
"""


def b64url(data):
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).rstrip(b"=").decode()


def token(kind):
    """An unsigned JWT (the local API decodes the claims without checking a signature)."""
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(CLAIMS[kind])}.unsigned"


# --- the server ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(log_path, table, **extra_env):
    """`target/debug/local-api` on a free port, its output in `log_path`. Answers (process, log, url)."""
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("AWS_") or name in ("PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE")
    }
    env.update(TABLE_NAME=table, CAMPAIGN_DEV_CLOCK="1", LOCAL_API_PORT=str(port))
    env.update(extra_env)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    server = subprocess.Popen([str(LOCAL_API)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.poll() is not None:
            sys.exit(f"local-api exited with {server.returncode}; its log: {log_path}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, log, f"http://127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                sys.exit(f"local-api did not listen on {port} within {START_TIMEOUT} s; its log: {log_path}")
            time.sleep(0.2)


def stop_server(server, log):
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    log.close()


class StoreSwitch:
    """A TCP relay in front of DynamoDB Local that can be cut: a local API behind it then finds its
    store unreachable (connections refused), as when DynamoDB is down or unreachable."""

    def __init__(self, endpoint):
        target = urllib.parse.urlsplit(endpoint)
        self.target = (target.hostname, target.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        with self.lock:
            for end in self.sockets:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                    end.close()
                except OSError:
                    pass


# --- fixtures -------------------------------------------------------------------------------------


class Api:
    def __init__(self, base, again=False):
        self.base = base
        # On an API that has the fixtures already (--url), what cannot be made twice (an ended
        # contest changed, a second team) answers 409 or 422: keep the first.
        self.again = again

    def call(self, who, method, path, body=None, now=None, key=None, ok=(200, 201)):
        headers = {"authorization": f"Bearer {token(who)}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if now is not None:
            headers["x-debug-now"] = rfc3339(now)
        if key is not None:
            headers["idempotency-key"] = key
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        if status not in ok and self.again and status in (409, 422):
            return None
        if status not in ok:
            raise SystemExit(f"fixture {method} {path} as {who}: {status} {text}")
        return json.loads(text) if text else None


def rfc3339(instant):
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_fixtures(api):
    """Data for the generated requests to find, made through the API. Answers the dictionaries."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    members = ["fuzz-member", "fuzz-admin", "fuzz-friend"]

    # In the past first (ledgers only move forward): a contest that has ended by now, with the
    # member in it and points earned while it ran, and a draw that has ended (its seed revealed).
    then = now - 3 * day
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-ended", now=then, body={
        "title": "Fuzz ended", "starts_at": rfc3339(then + hour), "ends_at": rfc3339(now - day),
        "metric": "points_earned", "prizes": [{"from": 1, "to": 1, "item": "Fuzz mug"},
                                              {"from": 2, "to": 3, "points": 10}],
    })
    api.call("member", "POST", "/v1/contests/fuzz-ended/entries", now=then + 2 * hour)
    api.call("service", "POST", "/v1/admin/points/grants", now=then + 3 * hour, key="fuzz-past-grant",
             body={"user_id": "fuzz-member", "amount": 500, "reason": "fuzz fixture", "ref": "fuzz-past"})
    api.call("admin", "PUT", "/v1/admin/draws/fuzz-ended-draw", now=then, body={
        "title": "Fuzz ended draw", "starts_at": rfc3339(then + hour), "ends_at": rfc3339(now - day),
        "daily_limit": 5, "prizes": [{"prize_id": "thanks", "name": "Thanks", "kind": "nothing", "weight": 1}],
        "consolation": "thanks",
    })

    # Configuration.
    api.call("admin", "PUT", "/v1/admin/checkin-campaigns/fuzz-campaign", body={
        "time_zone": "Asia/Shanghai", "ladder": [5, 10, 15, 20], "after_ladder": "hold_last",
        "milestones": [{"days": 3, "points": 50}], "makeup": {"lookback_days": 7, "max_per_month": 5, "cost": 10},
    })
    api.call("admin", "PUT", "/v1/admin/tiers", body={"tiers": [
        {"name": "New", "threshold": 0},
        {"name": "VIP", "threshold": 2000, "multiplier_bps": 12000, "extra_daily_spins": 1},
        {"name": "Black Card", "threshold": 2000000, "multiplier_bps": 15000, "extra_daily_spins": 3,
         "max_members": 1000},
    ]})
    api.call("admin", "PUT", "/v1/admin/multipliers/fuzz-double", body={
        "start": rfc3339(now - hour), "end": rfc3339(now + 30 * day), "factor_bps": 20000, "reasons": ["purchase"],
    })
    api.call("admin", "PUT", "/v1/admin/referral-program", body={})
    api.call("admin", "PUT", "/v1/admin/reserved-names", body={"names": ["admin", "official"]})

    # Contests: running (opt-in; everyone), upcoming (solo; team; one to cancel).
    earlier = now - 2 * hour
    running = {"starts_at": rfc3339(now - hour), "ends_at": rfc3339(now + 7 * day)}
    upcoming = {"starts_at": rfc3339(now + day), "ends_at": rfc3339(now + 8 * day)}
    prizes = [{"from": 1, "to": 1, "points": 100}, {"from": 2, "to": 2, "item": "Fuzz mug"}]
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-running", now=earlier, body={
        "title": "Fuzz running", "metric": "points_earned", "prizes": prizes, **running})
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-everyone", now=earlier, body={
        "title": "Fuzz everyone", "metric": "checkins", "entry": "everyone", **running})
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-upcoming", body={
        "title": "Fuzz upcoming", "metric": "points_earned", "prizes": prizes, **upcoming})
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-team", body={
        "title": "Fuzz team", "metric": "checkins", "format": "team", "team_size": 5, "prizes": prizes, **upcoming})
    api.call("admin", "PUT", "/v1/admin/contests/fuzz-cancel", body={
        "title": "Fuzz to cancel", "metric": "checkins", **upcoming})

    # Draws: a full wheel and two single-prize draws (a coupon, a physical prize) open now, one upcoming.
    open_now = {"starts_at": rfc3339(now - hour), "ends_at": rfc3339(now + 7 * day)}
    thanks = {"prize_id": "thanks", "name": "Thanks for playing", "kind": "nothing", "weight": 0}
    api.call("admin", "PUT", "/v1/admin/draws/fuzz-wheel", now=earlier, body={
        "title": "Fuzz wheel", "cost": 1, "free_per_day": 1, "daily_limit": 1000, "share_bonus": 1,
        "prizes": [
            {"prize_id": "earbuds", "name": "Earbuds", "kind": "physical", "weight": 5, "stock": 1000,
             "splits": 3, "rare": True},
            {"prize_id": "voucher", "name": "10 yuan off", "kind": "coupon", "weight": 15, "splits": 2},
            {"prize_id": "points-5", "name": "5 points", "kind": "points", "value": 5, "weight": 30},
            {**thanks, "weight": 50},
        ],
        "consolation": "thanks", "pity": {"after": 30}, **open_now,
    })
    api.call("admin", "PUT", "/v1/admin/draws/fuzz-coupon", now=earlier, body={
        "title": "Fuzz coupon", "daily_limit": 1000, "share_bonus": 0,
        "prizes": [{"prize_id": "voucher", "name": "Voucher", "kind": "coupon", "weight": 1}, thanks],
        "consolation": "thanks", **open_now,
    })
    api.call("admin", "PUT", "/v1/admin/draws/fuzz-physical", now=earlier, body={
        "title": "Fuzz physical", "daily_limit": 1000,
        "prizes": [{"prize_id": "mug", "name": "Mug", "kind": "physical", "weight": 1, "stock": 100000}, thanks],
        "consolation": "thanks", **open_now,
    })
    api.call("admin", "PUT", "/v1/admin/draws/fuzz-upcoming-draw", body={
        "title": "Fuzz upcoming draw", "daily_limit": 10,
        "prizes": [{"prize_id": "points-5", "name": "5 points", "kind": "points", "value": 5, "weight": 1}, thanks],
        "consolation": "points-5", **upcoming,
    })
    wheel_codes = [f"FZW-{n:03d}" for n in range(1, 41)]
    coupon_codes = [f"FZC-{n:03d}" for n in range(1, 41)]
    api.call("admin", "POST", "/v1/admin/draws/fuzz-wheel/prizes/voucher/codes", body={"codes": wheel_codes})
    api.call("admin", "POST", "/v1/admin/draws/fuzz-coupon/prizes/voucher/codes", body={"codes": coupon_codes})

    # Points for the members (the fuzzer's holds, spins and make-ups need some), grants to reverse.
    grant_keys = []
    for who in ("service", "admin"):
        for member in members:
            key = f"fuzz-{who}-grant-{member}"
            api.call(who, "POST", "/v1/admin/points/grants", key=key,
                     body={"user_id": member, "amount": 1_000_000, "reason": "fuzz fixture", "ref": key})
            grant_keys.append(key)
        key = f"fuzz-{who}-order"
        api.call(who, "POST", "/v1/admin/points/grants", key=key,
                 body={"user_id": "fuzz-member", "order_amount_cents": 12900, "reason": "order paid", "ref": key})
        grant_keys.append(key)
    hold_ids = []
    for who in ("service", "admin"):
        for n in range(1, 4):
            key = f"fuzz-{who}-hold-{n}"
            hold = api.call(who, "POST", "/v1/admin/points/holds", key=key,
                            body={"user_id": "fuzz-member", "amount": 10, "ref": key})
            hold_ids.append(hold["hold_id"])

    # Member activity: a check-in, a profile, a registration date, contest entries, a team, spins.
    api.call("member", "POST", "/v1/checkins")
    api.call("member", "POST", "/v1/checkins", body={"campaign_id": "fuzz-campaign"})
    api.call("member", "PUT", "/v1/me/profile", body={"display_name": "Fuzz Member", "leaderboard_visible": True})
    api.call("service", "POST", "/v1/admin/members/fuzz-member/registered",
             body={"registered_at": rfc3339(now - 400 * day)})
    api.call("member", "POST", "/v1/contests/fuzz-running/entries")
    api.call("member", "POST", "/v1/contests/fuzz-upcoming/entries")
    team = api.call("friend", "POST", "/v1/contests/fuzz-team/teams", body={"name": "Fuzzers"})
    team_code = (team or api.call("friend", "GET", "/v1/contests/fuzz-team"))["team"]["code"]
    won = api.call("member", "POST", "/v1/draws/fuzz-coupon/spins", key="fuzz-spin-coupon")
    api.call("member", "POST", "/v1/draws/fuzz-physical/spins", key="fuzz-spin-physical")
    api.call("member", "POST", "/v1/draws/fuzz-wheel/spins", key="fuzz-spin-wheel")
    won_code = won["spin"].get("code")
    fulfilments = api.call("admin", "GET", "/v1/admin/fulfilments?source=draw:fuzz-physical")
    fulfilment_ids = [f["fulfilment_id"] for f in fulfilments["fulfilments"]]
    member_code = api.call("member", "GET", "/v1/referrals/me")["code"]
    friend_code = api.call("friend", "GET", "/v1/referrals/me")["code"]

    iso_year, iso_week, _ = now.isocalendar()
    return {
        "contest_ids": ["fuzz-running", "fuzz-everyone", "fuzz-upcoming", "fuzz-team", "fuzz-cancel",
                        "fuzz-ended"],
        "draw_ids": ["fuzz-wheel", "fuzz-coupon", "fuzz-physical", "fuzz-upcoming-draw", "fuzz-ended-draw"],
        "prize_ids": ["voucher", "earbuds", "points-5", "thanks", "mug"],
        "coupon_codes": [c for c in [won_code] if c] + wheel_codes[:3] + coupon_codes[-3:],
        "hold_ids": hold_ids,
        "user_ids": members,
        "multiplier_ids": ["fuzz-double"],
        "fulfilment_ids": fulfilment_ids,
        "campaign_ids": ["daily", "fuzz-campaign"],
        "boards": ["all-time", "weekly", "monthly", f"weekly:{iso_year}-W{iso_week:02d}",
                   f"monthly:{now:%Y-%m}", "contest:fuzz-running", "contest:fuzz-ended",
                   "contest:fuzz-team:teams"],
        "sources": ["draw:fuzz-physical", "draw:fuzz-wheel", "contest:fuzz-ended"],
        "grant_keys": grant_keys,
        "grant_callers": ["service:fuzz-shop", "admin:fuzz-admin"],
        "codes": [team_code, friend_code, member_code],
        # Amounts and references a grant, hold or reversal takes (the generated ones are mostly refused).
        "amounts": [1, 5, 10, 100],
        "refs": ["fuzz-order-1", "fuzz-order-2"],
    }


# --- the Schemathesis configuration ----------------------------------------------------------------

# parameter (location.name) -> the fixture dictionary it draws from, most of the time.
BINDINGS = {
    "path.contest_id": "contest_ids",
    "path.draw_id": "draw_ids",
    "path.prize_id": "prize_ids",
    "path.code": "coupon_codes",
    "path.hold_id": "hold_ids",
    "path.user_id": "user_ids",
    "path.multiplier_id": "multiplier_ids",
    "path.fulfilment_id": "fulfilment_ids",
    "path.campaign_id": "campaign_ids",
    "path.board": "boards",
    "query.campaign_id": "campaign_ids",
    "query.source": "sources",
    "body.user_id": "user_ids",
    "body.campaign_id": "campaign_ids",
    "body.grant_idempotency_key": "grant_keys",
    "body.grant_caller": "grant_callers",
    "body.code": "codes",
    "body.amount": "amounts",
    "body.ref": "refs",
}
FIXTURE_PROBABILITY = 0.75


def toml_value(value):
    # JSON strings, numbers, booleans and arrays of them are valid TOML.
    return json.dumps(value, ensure_ascii=True)


def write_config(path, kind, fixtures, examples):
    lines = [
        "# Written by scripts/fuzz.py for one run; see its docstring.",
        f"seed = {SEED}",
        "workers = 1",
        "continue-on-failure = true",
        "request-timeout = 30",
        f"hooks = {toml_value(str(pathlib.Path(__file__).resolve()))}",
        "",
        "[headers]",
        f"Authorization = {toml_value('Bearer ' + token(kind))}",
        "",
        "[generation]",
        f"max-examples = {examples}",
        'database = "none"',
        "",
        "[output.sanitization]",
        "enabled = false",
        "",
        CHECKS.strip(),
        "",
    ]
    for name, values in fixtures.items():
        if values:
            lines += [f"[dictionaries.{name}]", f"values = {toml_value(values)}", ""]
    lines.append("[parameters]")
    for parameter, name in BINDINGS.items():
        if fixtures.get(name):
            lines.append(
                f'"{parameter}" = {{ dictionary = "{name}", probability = {FIXTURE_PROBABILITY} }}'
            )
    path.write_text("\n".join(lines) + "\n")


# The flows the links chain (openapi.yaml): each token kind first runs the stateful phase on
# these operations alone, where the chains are short enough to be followed often. The test fails
# if one of these flows was never followed through its link.
LINKED_OPERATIONS = [
    "postHold", "postHoldCapture", "postHoldRelease",
    "putDraw", "getDraws", "postDrawSpin",
    "putContest", "getContests", "postContestEntry",
]
REQUIRED_FLOWS = {  # flow -> the link names that make it
    "hold -> capture": {"CaptureHold", "CaptureReleasedHold"},
    "hold -> release": {"ReleaseHold", "ReleaseCapturedHold"},
    "draw -> spin": {"SpinDraw", "SpinFirstDraw"},
    "contest -> join": {"JoinContest", "JoinFirstContest"},
}
SECTION = re.compile(r"^=+ (.+?) =+$", re.M)


def condensed(text):
    """The report without its notes: WARNINGS (missing test data, the 403s a token kind gets on the
    routes of the others) and "Stateful tests" (links whose data was absent, e.g. an empty list)."""
    parts = SECTION.split(text)
    kept = [parts[0]]
    for name, body in zip(parts[1::2], parts[2::2]):
        if name not in ("WARNINGS", "Stateful tests"):
            kept.append(f"=== {name} ===" + body)
    return re.sub(r"\n{3,}", "\n\n", "".join(kept)).strip()


def link_coverage(ndjson, coverage):
    """Adds to `coverage` (link id -> statuses of the requests made through it) what a run's
    ndjson events recorded for the spec's own links (not those Schemathesis inferred)."""
    if not ndjson.exists():
        return
    with open(ndjson) as events:
        for line in events:
            if '"is_transition_applied":true' not in line.replace(" ", ""):
                continue
            recorder = json.loads(line).get("ScenarioFinished", {}).get("recorder", {})
            interactions = recorder.get("interactions", {})
            for case_id, case in recorder.get("cases", {}).items():
                transition = case.get("transition") or {}
                if not case.get("is_transition_applied") or transition.get("is_inferred", True):
                    continue
                response = (interactions.get(case_id) or {}).get("response") or {}
                coverage.setdefault(transition["id"], []).append(response.get("status_code"))


def wall_clock_spec():
    """openapi.yaml without the `x-debug-now` header: the fuzzing runs with the dev clock off, as
    on AWS, where the header means nothing (any value is ignored, so no value is "invalid").
    Written as JSON (which is YAML) next to the reports."""
    import yaml

    doc = yaml.safe_load(SPEC.read_text())
    debug_now = {"$ref": "#/components/parameters/DebugNow"}
    for item in doc["paths"].values():
        for operation in [item, *(op for op in item.values() if isinstance(op, dict))]:
            if isinstance(operation.get("parameters"), list):
                operation["parameters"] = [p for p in operation["parameters"] if p != debug_now]
    del doc["components"]["parameters"]["DebugNow"]
    path = OUT / "openapi-wall-clock.json"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str))
    return path


def schemathesis(name, config, base, extra, coverage):
    """One `st run`; its report in .local/fuzz/<name>.txt (printed without its warnings). Answers
    whether it passed."""
    report, ndjson = OUT / f"{name}.txt", OUT / f"{name}.ndjson"
    command = [str(ST), "--config-file", str(config), "--no-color", "run", str(wall_clock_spec()), "--url", base,
               "--report", "ndjson", "--report-ndjson-path", str(ndjson), *extra]
    print(f"== {name}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    with open(report, "w") as out:
        run = subprocess.run(command, cwd=OUT, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"})
    print(condensed(report.read_text()), flush=True)
    print(f"== {name}: exit {run.returncode} in {time.monotonic() - started:.0f} s (full report: {report})",
          flush=True)
    link_coverage(ndjson, coverage)
    return run.returncode == 0


def fuzz(base, kind, fixtures, examples, coverage):
    """One token kind against the healthy API: the linked flows' stateful phase, then every phase on
    every operation. Answers whether both passed."""
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / f"{kind}.toml"
    write_config(config, kind, fixtures, examples)
    links = ["--phases", "stateful", "--max-examples", str(2 * examples)]
    links += [arg for op in LINKED_OPERATIONS for arg in ("--include-operation-id", op)]
    passed = schemathesis(f"{kind}-links", config, base, links, coverage)
    return schemathesis(kind, config, base, [], coverage) and passed


def fuzz_store_down(base, kind, examples, coverage):
    """One token kind against an API whose store is unreachable: every answer that needs the store
    is 503 with `Retry-After`, in the contract's shape (the same checks)."""
    return schemathesis(f"{kind}-store-down", OUT / f"{kind}.toml", base,
                        ["--phases", "fuzzing", "--max-examples", str(examples)], coverage)


def print_link_coverage(coverage):
    """Prints how often each of the spec's links was followed. Answers the required flows that
    never were."""
    print("== the spec's links, followed (statuses of the requests made through them):")
    declared = sorted(link_ids())
    for link in declared + sorted(set(coverage) - set(declared)):
        statuses = coverage.get(link, [])
        counts = ", ".join(f"{n}× {s}" for s, n in sorted(collections.Counter(map(str, statuses)).items()))
        print(f"   {len(statuses):4d}  {link}" + (f"  ({counts})" if counts else ""))
    followed = {link.split("] ", 1)[1].split(" -> ")[0] for link, statuses in coverage.items() if statuses}
    missed = [flow for flow, names in REQUIRED_FLOWS.items() if not names & followed]
    for flow in missed:
        print(f"== the stateful phase never followed {flow} ({' or '.join(sorted(REQUIRED_FLOWS[flow]))})")
    return missed


def link_ids():
    """The ids Schemathesis gives the spec's links: `SOURCE -> [status] Name -> TARGET`."""
    import yaml  # a dependency of Schemathesis

    doc = yaml.safe_load(SPEC.read_text())
    labels = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    }
    return {
        f"{method.upper()} {path} -> [{status}] {name} -> {labels[link['operationId']]}"
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        for status, response in operation.get("responses", {}).items()
        for name, link in (response.get("links") or {}).items()
    }


def audit(table):
    """`campaign-ops audit` on the table the fuzzing wrote (the server stopped: a snapshot)."""
    env = {name: value for name, value in os.environ.items() if name.startswith("AWS_") or name in ("PATH", "HOME")}
    print(f"== campaign-ops audit of {table}", flush=True)
    run = subprocess.run([str(OPS), "audit"], cwd=ROOT, env={**env, "TABLE_NAME": table},
                         capture_output=True, text=True, timeout=600)
    print(run.stdout + run.stderr, flush=True)
    return run.returncode == 0 and "clean: every invariant holds" in run.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="fuzz this running local API (its fixtures are made again; no store-down pass)")
    parser.add_argument("--tokens", default=",".join(RUN_ORDER), help="comma-separated: member,service,admin")
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_EXAMPLES)),
                        help="examples per operation (default FUZZ_EXAMPLES or 50; a fifth of it with the store down)")
    parser.add_argument("--server-log", type=pathlib.Path, default=OUT / "server.log",
                        help="the local API's log (the store-down pass's: the same name with -store-down)")
    args = parser.parse_args()
    kinds = [k for k in RUN_ORDER if k in args.tokens.split(",")]
    if not ST.exists():
        sys.exit(f"{ST} is missing: run scripts/setup.sh (it installs the pinned Schemathesis)")
    if args.url is None:
        if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            sys.exit(
                "AWS_ENDPOINT_URL_DYNAMODB is not set: the local API needs DynamoDB Local (and AWS_REGION, "
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); `source scripts/lib.sh && ddb_start` sets them"
            )
        for binary in (LOCAL_API, OPS):
            if not binary.exists():
                sys.exit(f"{binary} is missing: run `cargo build --bins` first")

    started = time.monotonic()
    coverage, failed = {}, []
    table = f"fuzz-{uuid.uuid4().hex[:12]}"
    down_log = args.server_log.with_name(f"{args.server_log.stem}-store-down{args.server_log.suffix}")
    server = log = None
    base = args.url
    if base is None:
        server, log, base = start_server(args.server_log, table)
        print(f"== local-api on {base} (log: {args.server_log})", flush=True)
    try:
        fixtures = make_fixtures(Api(base, again=args.url is not None))
        if server is not None:
            # The fixtures needed the dev clock (a contest that ran in the past); the fuzzing runs
            # on the wall clock, as on AWS: whatever `x-debug-now` the generated requests send,
            # time never runs backwards, so the audit can hold every order of events.
            stop_server(server, log)
            server, log, base = start_server(args.server_log, table, CAMPAIGN_DEV_CLOCK="0")
            print(f"== local-api on {base}, dev clock off (log: {args.server_log})", flush=True)
        failed += [kind for kind in kinds if not fuzz(base, kind, fixtures, args.examples, coverage)]
    finally:
        if server is not None:
            stop_server(server, log)
    if args.url is None and not audit(table):
        failed.append("audit")
    if args.url is None:
        # The same table behind a relay that is cut once the API is up; a short deadline (100 ms)
        # so that each 503 comes at once.
        switch = StoreSwitch(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
        server, log, base = start_server(down_log, table, AWS_ENDPOINT_URL_DYNAMODB=switch.url,
                                         REQUEST_DEADLINE_MS="100")
        switch.cut()
        print(f"== local-api with its store unreachable on {base} (log: {down_log})", flush=True)
        try:
            down = max(5, args.examples // 5)
            failed += [f"{kind} (store down)" for kind in kinds
                       if not fuzz_store_down(base, kind, down, coverage)]
        finally:
            stop_server(server, log)
    missed = print_link_coverage(coverage)
    if missed and args.url is None and set(kinds) == set(RUN_ORDER):
        failed.append("stateful links")
    took = time.monotonic() - started
    if failed:
        print(f"== FAILED: {', '.join(failed)} ({took:.0f} s; reports in {OUT}; server logs: {args.server_log}, "
              f"{down_log})")
        return 1
    print(f"== passed: {', '.join(kinds)}, {args.examples} examples per operation ({took:.0f} s)")
    return 0


# --- our checks and stateful roots (when Schemathesis loads this file as its hooks module) ------


def link_sources():
    """The operations ("POST /v1/admin/points/holds") whose responses declare links in openapi.yaml."""
    import yaml  # a dependency of Schemathesis

    doc = yaml.safe_load(SPEC.read_text())
    return {
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        and any(isinstance(r, dict) and "links" in r for r in operation.get("responses", {}).values())
    }


def start_stateful_scenarios_at_link_sources():
    """Schemathesis starts stateful scenarios only at operations it deems likely to succeed with
    random data: a POST without a foreign key it cannot produce, or a GET list. That leaves out
    every creation our links start from: `POST /v1/admin/points/holds` (its `user_id` looks like a
    foreign key to a "User" no operation returns) and the admin `PUT`s of draws and contests, so
    hold → capture / release, draw → spin and contest → join would never run. Make every operation
    the spec's own links start from a scenario root too (Schemathesis is pinned: checked below)."""
    from schemathesis.specs.openapi import stateful

    classify = getattr(stateful, "classify_root_transitions", None)
    if classify is None:
        raise RuntimeError("schemathesis.specs.openapi.stateful.classify_root_transitions is gone: "
                           "update start_stateful_scenarios_at_link_sources in scripts/fuzz.py")
    sources = link_sources()

    def classify_root_transitions(operations, transitions, graph):
        roots = classify(operations, transitions, graph)
        for label in sources & roots.fallback:
            roots.fallback.discard(label)
            roots.reliable.add(label)
        return roots

    stateful.classify_root_transitions = classify_root_transitions


def register_checks():
    import schemathesis

    @schemathesis.check
    def retry_after_on_503(ctx, response, case):
        """A 503 tells the client when to retry: a `Retry-After` header of whole seconds."""
        if response.status_code != 503:
            return None
        values = response.headers.get("retry-after") or []
        if not values or not values[0].strip().isdigit():
            raise AssertionError(f"503 without a valid Retry-After header (got {values!r})")
        return None

    @schemathesis.check
    def problem_type_is_listed(ctx, response, case):
        """A problem's `type` is one of the `x-problem-types` its response lists."""
        media = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
        if response.status_code < 400 or media != "application/problem+json":
            return None
        documented = case.operation.definition.raw.get("responses", {}).get(str(response.status_code))
        if not isinstance(documented, dict) or "x-problem-types" not in documented:
            return None  # an undocumented status is status_code_conformance's failure
        try:
            problem_type = json.loads(response.content).get("type")
        except (ValueError, AttributeError):
            return None  # response_schema_conformance's failure
        listed = documented["x-problem-types"]
        if problem_type not in listed:
            raise AssertionError(
                f"{response.status_code} answered problem type {problem_type!r}, which x-problem-types "
                f"{listed} do not list"
            )
        return None


if __name__ == "__main__":
    sys.exit(main())
else:
    register_checks()
    start_stateful_scenarios_at_link_sources()
