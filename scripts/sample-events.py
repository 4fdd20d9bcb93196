#!/usr/bin/env python3
"""Writes events/*.json: one API Gateway HTTP API (payload 2.0) event per route of template.yaml,
with JWT claims in API Gateway's string form. Run it after adding a route; tests/tests/events.rs
runs every file through its handler and fails if a route has no file."""
import json
import pathlib

EVENTS = pathlib.Path(__file__).resolve().parent.parent / "events"
COMMON = {"iss": "https://cognito-idp.ap-east-1.amazonaws.com/ap-east-1_EXAMPLE", "auth_time": "1795420800",
          "exp": "1795424400", "iat": "1795420800"}
MEMBER = dict(COMMON, **{"sub": "3f1c9a52-7d4e-4b1a-9a55-2f6c1b0e8d11", "cognito:username": "alice",
                         "aud": "exampleappclientid", "token_use": "id"})
ADMIN = dict(COMMON, **{"sub": "9b2e4c11-0a3d-4f5e-8c7b-6d5e4f3a2b1c", "cognito:username": "ops-admin",
                        "cognito:groups": "[admin support]", "aud": "exampleappclientid", "token_use": "id"})
# A shop backend's OAuth client-credentials access token: no user, a scope.
SERVICE = dict(COMMON, **{"sub": "shopbackendclient", "client_id": "shopbackendclient", "token_use": "access",
                          "scope": "campaign/points.write", "version": "2", "jti": "5d1f0a3e-example"})
# The shop backend's token for member facts (registration dates).
MEMBERS_SERVICE = dict(SERVICE, scope="campaign/members.write")
# The hold the capture and release samples act on (the events test substitutes a real one).
SAMPLE_HOLD = "01KAW0M9B4E8Y6T3R1Q2P5N7XZ"


def event(method, path, route, qs="", body=None, claims=MEMBER, path_params=None, headers=None):
    qsp = dict(p.split("=", 1) for p in qs.split("&")) if qs else None
    e = {
        "version": "2.0", "routeKey": f"{method} {route}", "rawPath": path, "rawQueryString": qs,
        "headers": {"accept": "application/json",
                    "authorization": "Bearer eyJraWQiOiJFWEFNUExFIiwiYWxnIjoiUlMyNTYifQ.e30.EXAMPLE-SIGNATURE",
                    "host": "abc123.execute-api.ap-east-1.amazonaws.com", "user-agent": "CampaignApp/1.0 (iOS 19)",
                    "x-debug-now": "2026-11-23T08:00:00Z",
                    "x-forwarded-for": "203.0.113.7", "x-forwarded-port": "443", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "authorizer": {"jwt": {"claims": claims,
                                   "scopes": claims["scope"].split() if "scope" in claims else None}},
            "domainName": "abc123.execute-api.ap-east-1.amazonaws.com", "domainPrefix": "abc123",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7",
                     "userAgent": "CampaignApp/1.0 (iOS 19)"},
            "requestId": "Zx8YhgQ2oAMEVKQ=", "routeKey": f"{method} {route}", "stage": "$default",
            "time": "23/Nov/2026:08:00:00 +0000", "timeEpoch": 1795420800000},
        "isBase64Encoded": False}
    e["headers"].update(headers or {})
    if qsp:
        e["queryStringParameters"] = qsp
    if path_params:
        e["pathParameters"] = path_params
    if body is not None:
        e["body"] = json.dumps(body)
        e["headers"]["content-type"] = "application/json"
    return e


def name(method, route):
    parts = [p.strip("{}+") for p in route.split("/") if p]
    return "-".join([method.lower()] + parts)


def save(e):
    method, route = e["routeKey"].split(" ", 1)
    (EVENTS / f"{name(method, route)}.json").write_text(json.dumps(e, indent=2) + "\n")


WINTER = {"time_zone": "America/New_York", "ladder": [10, 10, 20, 20, 30, 30, 50], "after_ladder": "hold_last",
          "milestones": [{"days": 7, "points": 100}, {"days": 30, "points": 500}],
          "makeup": {"lookback_days": 3, "max_per_month": 1, "cost": 30},
          "start_date": "2026-12-01", "end_date": "2027-02-28"}
TIERS = {"tiers": [
    {"name": "New", "threshold": 0},
    {"name": "VIP", "threshold": 2000, "multiplier_bps": 12000, "extra_daily_spins": 1},
    {"name": "Black Card", "threshold": 20000, "multiplier_bps": 15000, "extra_daily_spins": 3, "max_members": 1000}]}
idem = lambda key: {"idempotency-key": key}
# A contest starting the day after the samples' "now" (2026-11-23T08:00:00Z).
SPRINT = {"title": "Autumn sprint", "description": "Earn the most points in a week",
          "starts_at": "2026-11-24T00:00:00+08:00", "ends_at": "2026-12-01T00:00:00+08:00",
          "metric": "points_earned", "entry": "opt_in",
          "prizes": [{"from": 1, "to": 1, "points": 1000}, {"from": 2, "to": 10, "points": 200},
                     {"from": 11, "to": 11, "item": "Thermos mug"}]}
RELAY = {"title": "Team relay", "starts_at": "2026-11-24T00:00:00+08:00", "ends_at": "2026-12-01T00:00:00+08:00",
         "metric": "checkins", "campaign": "daily", "format": "team", "team_size": 5,
         "prizes": [{"from": 1, "to": 3, "points": 300}]}
# The join code in the team-join sample (the events test substitutes the code of a team it creates).
SAMPLE_TEAM_CODE = "7KQ2M9XD"
contest = lambda cid: {"contest_id": cid}
# The code in the claim sample (the events test substitutes the code of a member it sets up).
SAMPLE_REFERRAL_CODE = "K7M2-Q9XD"

for e in [
    event("GET", "/v1/points", "/v1/points"),
    event("GET", "/v1/points/ledger", "/v1/points/ledger", qs="limit=20"),
    event("GET", "/v1/me", "/v1/me"),
    event("POST", "/v1/checkins", "/v1/checkins", body={"campaign_id": "daily"},
          headers=idem("checkin-7d1c2a90-2026-11-23")),
    event("POST", "/v1/checkins/makeup", "/v1/checkins/makeup", body={"campaign_id": "daily", "date": "2026-11-21"}),
    event("GET", "/v1/checkins", "/v1/checkins", qs="campaign_id=daily&month=2026-11"),
    event("PUT", "/v1/admin/checkin-campaigns/winter-2026", "/v1/admin/checkin-campaigns/{campaign_id}", body=WINTER,
          claims=ADMIN, path_params={"campaign_id": "winter-2026"}),
    event("GET", "/v1/admin/checkin-campaigns/daily", "/v1/admin/checkin-campaigns/{campaign_id}", claims=ADMIN,
          path_params={"campaign_id": "daily"}),
    event("POST", "/v1/admin/points/grants", "/v1/admin/points/grants", claims=SERVICE,
          headers=idem("order-8812-paid"),
          body={"user_id": MEMBER["sub"], "order_amount_cents": 12900, "reason": "order paid", "ref": "order-8812"}),
    event("POST", "/v1/admin/points/holds", "/v1/admin/points/holds", claims=SERVICE, headers=idem("order-8813-hold"),
          body={"user_id": MEMBER["sub"], "amount": 300, "ref": "order-8813"}),
    event("POST", f"/v1/admin/points/holds/{SAMPLE_HOLD}/capture", "/v1/admin/points/holds/{hold_id}/capture",
          claims=SERVICE, headers=idem("order-8813-capture"), path_params={"hold_id": SAMPLE_HOLD}),
    event("POST", f"/v1/admin/points/holds/{SAMPLE_HOLD}/release", "/v1/admin/points/holds/{hold_id}/release",
          claims=SERVICE, headers=idem("order-8813-release"), path_params={"hold_id": SAMPLE_HOLD}),
    event("POST", "/v1/admin/points/reversals", "/v1/admin/points/reversals", claims=SERVICE,
          headers=idem("order-8812-refund-1"),
          body={"grant_idempotency_key": "order-8812-paid", "amount": 50, "reason": "partial refund"}),
    event("GET", "/v1/admin/tiers", "/v1/admin/tiers", claims=ADMIN),
    event("PUT", "/v1/admin/tiers", "/v1/admin/tiers", claims=ADMIN, body=TIERS),
    event("GET", "/v1/admin/multipliers", "/v1/admin/multipliers", claims=ADMIN),
    event("PUT", "/v1/admin/multipliers/double-12", "/v1/admin/multipliers/{multiplier_id}", claims=ADMIN,
          path_params={"multiplier_id": "double-12"},
          body={"start": "2026-12-12T00:00:00+08:00", "end": "2026-12-13T00:00:00+08:00", "factor_bps": 20000}),
    event("DELETE", "/v1/admin/multipliers/double-12", "/v1/admin/multipliers/{multiplier_id}", claims=ADMIN,
          path_params={"multiplier_id": "double-12"}),
    event("GET", "/v1/me/profile", "/v1/me/profile"),
    event("PUT", "/v1/me/profile", "/v1/me/profile", body={"display_name": "Alice 🌸", "leaderboard_visible": True}),
    event("GET", "/v1/admin/reserved-names", "/v1/admin/reserved-names", claims=ADMIN),
    event("PUT", "/v1/admin/reserved-names", "/v1/admin/reserved-names", claims=ADMIN,
          body={"names": ["admin", "official", "客服"]}),
    event("POST", f"/v1/admin/members/{MEMBER['sub']}/display-name/reset",
          "/v1/admin/members/{user_id}/display-name/reset", claims=ADMIN, path_params={"user_id": MEMBER["sub"]}),
    event("POST", f"/v1/admin/members/{MEMBER['sub']}/registered", "/v1/admin/members/{user_id}/registered",
          claims=MEMBERS_SERVICE, path_params={"user_id": MEMBER["sub"]},
          body={"registered_at": "2025-06-18T10:00:00+08:00"}),
    event("GET", "/v1/leaderboards/all-time", "/v1/leaderboards/{board}", qs="limit=10",
          path_params={"board": "all-time"}),
    event("GET", "/v1/leaderboards/weekly/me", "/v1/leaderboards/{board}/me", qs="neighbours=2",
          path_params={"board": "weekly"}),
    event("GET", "/v1/admin/contests", "/v1/admin/contests", qs="status=upcoming", claims=ADMIN),
    event("PUT", "/v1/admin/contests/autumn-sprint", "/v1/admin/contests/{contest_id}", claims=ADMIN,
          path_params=contest("autumn-sprint"), body=SPRINT),
    event("GET", "/v1/admin/contests/autumn-sprint", "/v1/admin/contests/{contest_id}", claims=ADMIN,
          path_params=contest("autumn-sprint")),
    event("POST", "/v1/admin/contests/autumn-sprint/cancel", "/v1/admin/contests/{contest_id}/cancel",
          claims=ADMIN, path_params=contest("autumn-sprint")),
    event("GET", "/v1/admin/contests/autumn-sprint/results", "/v1/admin/contests/{contest_id}/results",
          claims=ADMIN, path_params=contest("autumn-sprint")),
    event("GET", "/v1/admin/fulfilments", "/v1/admin/fulfilments", qs="source=contest:autumn-sprint&status=to_fulfil",
          claims=ADMIN),
    event("POST", "/v1/admin/fulfilments/f0a1b2c3d4e5f60718293a4b5/shipped",
          "/v1/admin/fulfilments/{fulfilment_id}/shipped", claims=ADMIN,
          path_params={"fulfilment_id": "f0a1b2c3d4e5f60718293a4b5"}),
    event("GET", "/v1/contests", "/v1/contests"),
    event("GET", "/v1/contests/autumn-sprint", "/v1/contests/{contest_id}", path_params=contest("autumn-sprint")),
    event("POST", "/v1/contests/autumn-sprint/entries", "/v1/contests/{contest_id}/entries", body={},
          path_params=contest("autumn-sprint")),
    event("POST", "/v1/contests/team-relay/teams", "/v1/contests/{contest_id}/teams", body={"name": "Early Birds"},
          path_params=contest("team-relay")),
    event("POST", "/v1/contests/team-relay/teams/join", "/v1/contests/{contest_id}/teams/join",
          body={"code": SAMPLE_TEAM_CODE}, path_params=contest("team-relay")),
    event("GET", "/v1/admin/referral-program", "/v1/admin/referral-program", claims=ADMIN),
    event("PUT", "/v1/admin/referral-program", "/v1/admin/referral-program", claims=ADMIN,
          body={"invitee_reward": 100, "referrer_reward": 100, "qualifying": "first_purchase",
                "claim_window_days": 7, "monthly_cap": 20, "lifetime_cap": 200, "enabled": True}),
    event("GET", "/v1/referrals/me", "/v1/referrals/me", qs="limit=20"),
    event("POST", "/v1/referrals/claim", "/v1/referrals/claim", body={"code": SAMPLE_REFERRAL_CODE},
          headers=idem("claim-3f1c9a52")),
    event("POST", "/v1/contests/team-relay/teams/leave", "/v1/contests/{contest_id}/teams/leave", body={},
          path_params=contest("team-relay")),
]:
    save(e)

# Set-up events the route samples build on (run before them by the events test).
(EVENTS / "setup").mkdir(exist_ok=True)
(EVENTS / "setup" / "put-v1-admin-contests-team-relay.json").write_text(json.dumps(
    event("PUT", "/v1/admin/contests/team-relay", "/v1/admin/contests/{contest_id}", claims=ADMIN,
          path_params=contest("team-relay"), body=RELAY), indent=2) + "\n")
# Another member's code page (its code is what the claim sample claims).
FRIEND = dict(MEMBER, sub="8d0f3b27-51aa-4c0e-9f7e-2b6c5d4e3f21", **{"cognito:username": "bea"})
(EVENTS / "setup" / "get-v1-referrals-me-friend.json").write_text(json.dumps(
    event("GET", "/v1/referrals/me", "/v1/referrals/me", claims=FRIEND), indent=2) + "\n")

# The scheduled event EventBridge sends the settlement job (`detail.now` is honoured only with the
# dev clock on: `{"now": "2026-12-01T00:02:00+08:00"}` settles as of then).
(EVENTS / "schedules").mkdir(exist_ok=True)
(EVENTS / "schedules" / "settle-contests.json").write_text(json.dumps({
    "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
    "source": "aws.events", "account": "123456789012", "time": "2026-12-01T00:02:00Z", "region": "ap-east-1",
    "resources": ["arn:aws:events:ap-east-1:123456789012:rule/campaign-SettleContestsFunctionEvery1Minute"],
    "detail": {}}, indent=2) + "\n")
