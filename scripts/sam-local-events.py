#!/usr/bin/env python3
"""Runs the whole events/ story on ONE table, in an order where each event works, and prints each
answer.

    .local/venv/bin/python scripts/sam-local-events.py [--sam] [--endpoint URL] [--table NAME] [-- sam args]
    .local/venv/bin/python scripts/sam-local-events.py --local-api http://127.0.0.1:3000
    .local/venv/bin/python scripts/sam-local-events.py --only-print-order

Default (`--sam`): each event goes through `sam local invoke <LogicalId> -e <file>
--parameter-overrides LocalDynamoDbEndpoint=<endpoint> LocalDevClock=1` (Docker, after `sam build`;
the logical id from template.yaml's HttpApi events, SettleContestsFunction for the schedule).
Arguments after `--` go to every `sam local invoke`. On Linux:
`--endpoint http://127.0.0.1:8000 -- --docker-network host`.

`--local-api URL`: each HTTP event becomes a real HTTP request to the project's local API (no Docker),
with a token rebuilt from the event's claims (the local API reads the claims from the bearer token
without checking its signature). The scheduled event has no HTTP way in: it is skipped there.

The story needs a table it has not run on (it creates contests and spends idempotency keys; a
second run on the same table answers refusals: 404, 409, 422, 429). `DDB_PORT=8000 scripts/dev.sh`
(without DEV_DATA=1) starts DynamoDB Local afresh and creates the table campaign-local; for another
table start it with `TABLE_NAME=<name>` and pass `--table <name>` (sam mode). The samples carry
`x-debug-now`: the functions need the dev clock (LocalDevClock=1 here; CAMPAIGN_DEV_CLOCK=1 for the
local API, which scripts/dev.sh sets).

What earlier answers made replaces the samples' placeholders in later events, as
tests/tests/events.rs does: the hold id (capture, release), the team's join code (join), the
friend's referral code (claim), and what the spin won, if anything (a coupon code: the coupon
samples; a physical prize's fulfilment id: the shipped sample).

Every file under events/ must be in ORDER exactly once (the deliberate copies aside): a new sample
event fails this script until it is given its place in the story. The exit status is 1 when an
event answers other than expected (2xx, or a refusal explained in its line).
"""

import argparse
import base64
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# The placeholders in the samples (see scripts/sample-events.py) and the answers that give the
# real values.
SAMPLE_HOLD = "01KAW0M9B4E8Y6T3R1Q2P5N7XZ"
SAMPLE_TEAM_CODE = "7KQ2M9XD"
SAMPLE_REFERRAL_CODE = "K7M2-Q9XD"
SAMPLE_COUPON = "D12-7QK2M9"
SAMPLE_FULFILMENT = "f0a1b2c3d4e5f60718293a4b5"

SCHEDULED_FUNCTION = "SettleContestsFunction"
TRUNCATE = 300


def is_2xx(status):
    return status is not None and 200 <= status < 300


class Step:
    """One event of the story.

    file:     path under events/
    learn:    {placeholder: function(answer) -> real value or None}; the value replaces the
              placeholder in every later event
    mutate:   function(event) -> event, for a deliberate copy of a sample (the copy's file is
              still the sample's; `label` says what differs)
    refusal:  (status, placeholder, why): the step answers this non-2xx status by design unless
              an earlier answer gave a real value for the placeholder (then it must answer 2xx)
    """

    def __init__(self, file, learn=None, mutate=None, label=None, refusal=None):
        self.file = file
        self.learn = learn or {}
        self.mutate = mutate
        self.label = label or file
        self.refusal = refusal

    def expected(self, made):
        """(whether `status` is what this step should answer, the note to print with it)."""
        if self.refusal and self.refusal[1] not in made:
            status, _, why = self.refusal
            return (lambda s: s == status), f"{status} by design: {why}"
        return is_2xx, ""


def second_hold(event):
    """A second checkout hold for the release (a captured hold cannot be released). Run with the
    sample's idempotency key, the hold would only replay the first answer (the captured hold), so
    the copy is another order: its own key and ref."""
    event["headers"]["idempotency-key"] = "order-8814-hold"
    body = json.loads(event["body"])
    body["ref"] = "order-8814"
    event["body"] = json.dumps(body)
    return event


def top_up(event):
    """A grant of 500 points (what tests/tests/events.rs seeds before a hold). Unavoidable: the
    sample grant is a 129-yuan order, 129 points; with the check-in (5) and the referral reward
    (100) alice has 234, and the sample hold is 300 points (twice: one captured, one released),
    so without it the first hold answers 409 (insufficient points)."""
    event["headers"]["idempotency-key"] = "story-top-up"
    body = json.loads(event["body"])
    body.pop("order_amount_cents", None)
    body.update(amount=500, reason="story top-up (covers the 300-point holds)", ref="story-top-up")
    event["body"] = json.dumps(body)
    return event


def spin_field(name):
    """`spin.<name>` of a spin answer: `code` for a coupon won, `fulfilment_id` for a physical
    prize won (a random draw: usually neither)."""
    return lambda answer: (answer.get("spin") or {}).get(name)


ORDER = [
    # --- 08:00 (every sample's x-debug-now unless said otherwise): the admins set things up.
    Step("get-v1-admin-tiers.json"),
    Step("put-v1-admin-tiers.json"),
    Step("put-v1-admin-multipliers-multiplier_id.json"),
    Step("get-v1-admin-multipliers.json"),
    # The delete needs the window the put made.
    Step("delete-v1-admin-multipliers-multiplier_id.json"),
    Step("get-v1-admin-reserved-names.json"),
    Step("put-v1-admin-reserved-names.json"),
    Step("put-v1-admin-checkin-campaigns-campaign_id.json"),
    Step("get-v1-admin-checkin-campaigns-campaign_id.json"),
    Step("get-v1-admin-referral-program.json"),
    # Before the claim: the claim is refused while the program is off.
    Step("put-v1-admin-referral-program.json"),
    # The contests the member samples act on (autumn-sprint; team-relay for the team samples).
    Step("put-v1-admin-contests-contest_id.json"),
    Step("setup/put-v1-admin-contests-team-relay.json"),
    Step("get-v1-admin-contests.json"),
    Step("get-v1-admin-contests-contest_id.json"),
    Step("get-v1-admin-contests-contest_id-results.json"),
    # The draw the draw samples act on (it opens at 09:00).
    Step("put-v1-admin-draws-draw_id.json"),
    # --- The member (alice) at 08:00.
    Step("get-v1-me-profile.json"),
    Step("put-v1-me-profile.json"),
    # Resets the display name the profile put set.
    Step("post-v1-admin-members-user_id-display-name-reset.json"),
    # The friend's (bea's) code page: its code is what alice claims.
    Step("setup/get-v1-referrals-me-friend.json", learn={SAMPLE_REFERRAL_CODE: lambda a: a.get("code")}),
    Step("get-v1-referrals-me.json"),
    # Before the registration date below: the claim window is 7 days from registration, and the
    # registered sample dates alice in 2025 (a claim after it answers 409, window passed).
    Step("post-v1-referrals-claim.json"),
    Step("post-v1-admin-members-user_id-registered.json"),
    Step("post-v1-checkins.json"),
    # Points first: everything that spends points (holds, the make-up) comes after.
    Step("post-v1-admin-points-grants.json"),
    Step(
        "post-v1-admin-points-grants.json",
        mutate=top_up,
        label="post-v1-admin-points-grants.json (copy: top-up of 500 points)",
    ),
    Step("post-v1-admin-points-holds.json", learn={SAMPLE_HOLD: lambda a: a.get("hold_id")}),
    Step("post-v1-admin-points-holds-hold_id-capture.json"),
    # The deliberate second run: a captured hold cannot be released, so the release gets a hold
    # of its own (a copy of the sample as another order; its id replaces the first one's).
    Step(
        "post-v1-admin-points-holds.json",
        mutate=second_hold,
        learn={SAMPLE_HOLD: lambda a: a.get("hold_id")},
        label="post-v1-admin-points-holds.json (second hold, order-8814, for the release)",
    ),
    Step("post-v1-admin-points-holds-hold_id-release.json"),
    # After the grant it reverses part of.
    Step("post-v1-admin-points-reversals.json"),
    # After the check-in (a make-up fills a missed day before it) and the grant (it costs points).
    Step("post-v1-checkins-makeup.json"),
    Step("get-v1-checkins.json"),
    Step("get-v1-points.json"),
    Step("get-v1-points-ledger.json"),
    Step("get-v1-contests.json"),
    Step("get-v1-contests-contest_id.json"),
    Step("post-v1-contests-contest_id-entries.json"),
    # Create, join (with the created team's code), leave.
    Step(
        "post-v1-contests-contest_id-teams.json",
        learn={SAMPLE_TEAM_CODE: lambda a: (a.get("team") or {}).get("code")},
    ),
    Step("post-v1-contests-contest_id-teams-join.json"),
    Step("post-v1-contests-contest_id-teams-leave.json"),
    Step("get-v1-me.json"),
    Step("get-v1-leaderboards-board.json"),
    Step("get-v1-leaderboards-board-me.json"),
    Step("get-v1-admin-fulfilments.json"),
    # Last of the autumn-sprint samples: a cancelled contest can no longer be joined.
    Step("post-v1-admin-contests-contest_id-cancel.json"),
    # --- 08:30: the draw's coupon codes.
    Step("post-v1-admin-draws-draw_id-prizes-prize_id-codes.json"),
    # --- 09:00: support looks at the friend's referrals, then revokes alice's claim.
    Step("get-v1-admin-referrals-user_id.json"),
    Step("post-v1-admin-referrals-user_id-revoke.json"),
    # --- 10:00: the draw is open.
    Step("get-v1-admin-draws.json"),
    Step("get-v1-draws.json"),
    Step("get-v1-draws-draw_id.json"),
    # A coupon or a physical prize won here (a random draw) replaces the sample code in the coupon
    # samples and the sample fulfilment id in the shipped sample.
    Step(
        "post-v1-draws-draw_id-spins.json",
        learn={SAMPLE_COUPON: spin_field("code"), SAMPLE_FULFILMENT: spin_field("fulfilment_id")},
    ),
    Step("get-v1-admin-coupons-code.json"),
    Step(
        "post-v1-admin-coupons-code-redeem.json",
        refusal=(409, SAMPLE_COUPON, "the spin won no coupon, and nobody won the sample code"),
    ),
    # After the spin (though its x-debug-now is 08:00: if the spin won the earbuds, the shipment
    # is recorded "before" the prize was won; the dev clock allows it).
    Step(
        "post-v1-admin-fulfilments-fulfilment_id-shipped.json",
        refusal=(404, SAMPLE_FULFILMENT, "the spin won no physical prize, and the sample's fulfilment id "
                 "names no recorded prize"),
    ),
    # --- 10:05 and 10:10.
    Step("get-v1-draws-draw_id-spins.json"),
    Step("post-v1-draws-draw_id-shares.json"),
    # --- 2026-12-24: the draw has ended; the reveal comes last.
    Step("get-v1-draws-draw_id-reveal.json"),
    # --- The settlement schedule (EventBridge; wall-clock "now": settles whatever is due).
    Step("schedules/settle-contests.json"),
]


def check_order():
    """Every file under events/ exactly once in ORDER (the deliberate copies aside), and every
    listed file present."""
    on_disk = {p.relative_to(EVENTS).as_posix() for p in EVENTS.rglob("*") if p.is_file()}
    plain = [s.file for s in ORDER if s.mutate is None]
    listed = {s.file for s in ORDER}
    problems = []
    for name in sorted(on_disk - listed):
        problems.append(f"events/{name} is not in the story: give it a place in ORDER in {__file__}")
    for name in sorted(listed - on_disk):
        problems.append(f"events/{name} is in ORDER but missing")
    for name in sorted({n for n in plain if plain.count(n) > 1}):
        problems.append(f"events/{name} is in ORDER more than once")
    for name in sorted(listed - set(plain)):
        problems.append(f"events/{name} is in ORDER only as a copy")
    if problems:
        sys.exit("sam-local-events: the order does not match events/:\n  " + "\n  ".join(problems))


def load(step, made):
    """The step's event, with the values made so far in place of the placeholders."""
    text = (EVENTS / step.file).read_text()
    for placeholder, value in made.items():
        text = text.replace(placeholder, value)
    event = json.loads(text)
    if step.mutate:
        event = step.mutate(event)
    return event


# --- the local API ------------------------------------------------------------------------------


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token_for(claims):
    """An unsigned JWT carrying the event's claims, like tests/src/lib.rs `token()`. The events
    hold claims in API Gateway's string form (`"[admin support]"`); a real token has an array,
    which the local API renders back into that same string (tools/local-api/src/event.rs)."""
    payload = {}
    for name, value in claims.items():
        if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
            value = value[1:-1].split()
        payload[name] = value
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(payload).encode())}.unsigned"


# Headers the HTTP client sets itself (or the local API adds, as API Gateway would).
SKIP_HEADERS = {"host", "content-length", "authorization", "connection"}


def send_local(base, event):
    """The HTTP event as a request to the local API: (status, answer text)."""
    url = base.rstrip("/") + event["rawPath"]
    if event.get("rawQueryString"):
        url += "?" + event["rawQueryString"]
    headers = {k: v for k, v in event.get("headers", {}).items() if k.lower() not in SKIP_HEADERS}
    claims = (((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt") or {}).get("claims")
    if claims:
        headers["authorization"] = "Bearer " + token_for(claims)
    body = event.get("body")
    if body is not None:
        body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    method = event["requestContext"]["http"]["method"]
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError) as err:
        return None, f"no answer from {base}: {err}"


# --- sam local invoke ---------------------------------------------------------------------------


def function_ids():
    """routeKey ("GET /v1/points") -> logical id, from template.yaml's HttpApi events."""
    from cfnlint.decode import decode

    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        sys.exit(f"template.yaml does not parse: {errors}")
    routes = {}
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for source in (resource.get("Properties", {}).get("Events") or {}).values():
            if source.get("Type") == "HttpApi":
                props = source.get("Properties", {})
                routes[f"{props['Method'].upper()} {props['Path']}"] = logical_id
    return routes


def last_json_object(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def send_sam(logical_id, step, event, args):
    """`sam local invoke` with the event (the sample file itself, or a temporary file when a
    value was substituted or the event is a copy): (status, answer text)."""
    original = EVENTS / step.file
    tmp = None
    if event != json.loads(original.read_text()):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="sam-event-", delete=False)
        json.dump(event, tmp)
        tmp.close()
    overrides = [f"LocalDynamoDbEndpoint={args.endpoint}", "LocalDevClock=1"]
    if args.table:
        overrides.append(f"LocalTableName={args.table}")
    command = ["sam", "local", "invoke", logical_id, "-e", tmp.name if tmp else str(original),
               "--parameter-overrides", *overrides, *args.sam_args]
    try:
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    finally:
        if tmp:
            os.unlink(tmp.name)
    answer = last_json_object(run.stdout)
    if run.returncode != 0 or answer is None:
        tail = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
        return None, f"sam local invoke failed (exit {run.returncode}): {tail}"
    if "statusCode" not in answer:
        # A scheduled function answers its report, not an HTTP response.
        return 200, json.dumps(answer)
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        body = base64.b64decode(body).decode(errors="replace")
    return int(answer["statusCode"]), body


# --- the story ----------------------------------------------------------------------------------


def compact(text):
    try:
        text = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        pass
    return text if len(text) <= TRUNCATE else text[: TRUNCATE - 3] + "..."


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sam", action="store_true", help="run each event with `sam local invoke` (default)")
    mode.add_argument("--local-api", metavar="URL", help="send each event to the local API at URL instead")
    mode.add_argument("--only-print-order", action="store_true", help="list the order and stop")
    parser.add_argument("--endpoint", default="http://host.docker.internal:8000",
                        help="DynamoDB Local as the container sees it (sam mode; default %(default)s)")
    parser.add_argument("--table", help="LocalTableName for sam (default: the template's, campaign-local)")
    parser.add_argument("sam_args", nargs="*", help="after --: extra arguments for every `sam local invoke`")
    args = parser.parse_args()

    check_order()
    if args.only_print_order:
        for number, step in enumerate(ORDER, 1):
            print(f"{number:3} {step.label}")
        return 0

    routes = {} if args.local_api else function_ids()
    made = {}
    ran = answered_2xx = skipped = 0
    failed = []
    for step in ORDER:
        event = load(step, made)
        scheduled = "routeKey" not in event
        if scheduled and args.local_api:
            print(f"{step.label}: SKIPPED - the local API has no HTTP way to fire a schedule (it fires "
                  f"{SCHEDULED_FUNCTION} itself every minute, with the wall clock; once at will: "
                  "cargo run -p ops -- settle-contests)")
            skipped += 1
            continue
        if args.local_api:
            status, text = send_local(args.local_api, event)
        else:
            logical_id = SCHEDULED_FUNCTION if scheduled else routes.get(event["routeKey"])
            if logical_id is None:
                sys.exit(f"{step.file}: no function of template.yaml serves {event['routeKey']}")
            status, text = send_sam(logical_id, step, event, args)
        ran += 1
        answered_2xx += is_2xx(status)
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if is_2xx(status) and isinstance(answer, dict):
            for placeholder, find in step.learn.items():
                value = find(answer)
                if isinstance(value, str) and value:
                    made[placeholder] = value
        accept, why = step.expected(made)
        ok = accept(status)
        if not ok:
            failed.append(step.label)
        note = f"  ({why})" if why else ""
        flag = "" if ok else "  <-- UNEXPECTED"
        shown = status if status is not None else "ERR"
        print(f"{step.label}: {shown} {compact(text)}{note}{flag}", flush=True)

    print(f"{ran} events, {answered_2xx} answered 2xx")
    if skipped:
        print(f"({skipped} skipped: the scheduled event; the local API has no HTTP way to fire it)")
    if failed:
        print("unexpected answers: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
