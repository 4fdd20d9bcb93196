#!/usr/bin/env python3
"""Contract fuzzing of the local API with Schemathesis (pinned in scripts/pins.env, installed into
.local/venv by scripts/setup.sh).

    .local/venv/bin/python scripts/fuzz.py                       # what tests/py/test_fuzz.py runs
    FUZZ_EXAMPLES=500 .local/venv/bin/python scripts/fuzz.py     # heavier: 500 examples per operation
    .local/venv/bin/python scripts/fuzz.py --tokens admin --url http://127.0.0.1:3000   # a running API

Without `--url` it starts `target/debug/local-api` (build it first) on a fresh table in DynamoDB
Local (AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be
set), with the dev clock on. It then makes fixtures through the API (a check-in campaign, tiers, a
multiplier, the referral program, contests and draws running, upcoming and ended, coupon codes,
points, holds, a team, a referral code, a won coupon and a fulfilment) so that generated requests
reach past "404 unknown": Schemathesis draws path ids, user ids, codes and grant keys from these
fixtures most of the time (dictionaries) and generates them freely the rest of the time.

Then `st run openapi.yaml` once per token kind — member, service, admin — against the same
server, with every phase (coverage, fuzzing, and stateful: the `links` of openapi.yaml chain hold
→ capture / release, draw → spin and contest → join), a fixed seed, one worker, and at least
FUZZ_EXAMPLES (default 50) examples per operation. Checks: every Schemathesis check but
`unsupported_method` (see CHECKS below), plus two of ours: a 503 carries `Retry-After`, and a
problem's `type` is one its response lists in `x-problem-types`.

Exit status 0 when all runs pass. Each run's report (failures with curl reproductions) is printed
and kept in .local/fuzz/<token>.txt; the server's log in .local/fuzz/server.log (or --server-log).

The same file is the Schemathesis hooks module (it registers the two checks when `st` loads it).
"""

import argparse
import base64
import datetime as dt
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT / "openapi.yaml"
LOCAL_API = ROOT / "target" / "debug" / "local-api"
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

# A method the spec does not list on a path (TRACE /v1/points) gets API Gateway's own
# `404 {"message":"Not Found"}`: an HTTP API answers so for any route it does not have, and the
# local API does what API Gateway does. The check wants 405, which API Gateway never sends.
[checks.unsupported_method]
enabled = false

# A schema-valid request may still break a rule no schema states: a make-up date outside the
# window, a contest starting too soon, a name an admin reserved (422 by our rules).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]

# Schema-invalid requests must be refused with a 4xx our rules name (413: a body over 16 KiB).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]
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


def start_server(log_path):
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        sys.exit(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: the local API needs DynamoDB Local (and AWS_REGION, "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); `source scripts/lib.sh && ddb_start` sets them"
        )
    if not LOCAL_API.exists():
        sys.exit(f"{LOCAL_API} is missing: run `cargo build --bins` first")
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith("AWS_") or name in ("PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE")
    }
    env.update(
        TABLE_NAME=f"fuzz-{uuid.uuid4().hex[:12]}", CAMPAIGN_DEV_CLOCK="1", LOCAL_API_PORT=str(port)
    )
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


def run_schemathesis(base, kind, fixtures, examples):
    OUT.mkdir(parents=True, exist_ok=True)
    config = OUT / f"{kind}.toml"
    write_config(config, kind, fixtures, examples)
    report = OUT / f"{kind}.txt"
    command = [str(ST), "--config-file", str(config), "--no-color", "run", str(SPEC), "--url", base]
    print(f"== {kind}: {' '.join(command)}", flush=True)
    started = time.monotonic()
    with open(report, "w") as out:
        run = subprocess.run(command, cwd=OUT, stdout=out, stderr=subprocess.STDOUT,
                             env={**os.environ, "PYTHONHASHSEED": "0"})
    text = report.read_text()
    print(text, flush=True)
    print(f"== {kind}: exit {run.returncode} in {time.monotonic() - started:.0f} s (report: {report})",
          flush=True)
    return run.returncode


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="fuzz this running local API (its fixtures are made again)")
    parser.add_argument("--tokens", default=",".join(RUN_ORDER), help="comma-separated: member,service,admin")
    parser.add_argument("--examples", type=int, default=int(os.environ.get("FUZZ_EXAMPLES", DEFAULT_EXAMPLES)),
                        help="examples per operation (default FUZZ_EXAMPLES or 50)")
    parser.add_argument("--server-log", type=pathlib.Path, default=OUT / "server.log")
    args = parser.parse_args()
    kinds = [k for k in RUN_ORDER if k in args.tokens.split(",")]
    if not ST.exists():
        sys.exit(f"{ST} is missing: run scripts/setup.sh (it installs the pinned Schemathesis)")

    started = time.monotonic()
    server = log = None
    base = args.url
    if base is None:
        server, log, base = start_server(args.server_log)
        print(f"== local-api on {base} (log: {args.server_log})", flush=True)
    try:
        fixtures = make_fixtures(Api(base, again=args.url is not None))
        failed = [kind for kind in kinds if run_schemathesis(base, kind, fixtures, args.examples) != 0]
    finally:
        if server is not None:
            stop_server(server, log)
    took = time.monotonic() - started
    if failed:
        print(f"== FAILED: {', '.join(failed)} ({took:.0f} s; server log: {args.server_log})")
        return 1
    print(f"== passed: {', '.join(kinds)}, {args.examples} examples per operation ({took:.0f} s)")
    return 0


# --- our checks (registered when Schemathesis loads this file as its hooks module) ---------------


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
