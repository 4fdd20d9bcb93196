#!/usr/bin/env python3
"""Re-derives a member's lucky-draw spins from the revealed seed: standard library only,
independent of the service's code. Algorithm `campaign-draw-v1` (docs/data-model.md, "Draws").

    python3 tools/verify_draw.py --reveal reveal.json --draw draw.json --spins spins.json --member ID

reveal.json: GET /v1/draws/{id}/reveal; draw.json: GET /v1/draws/{id}; spins.json: one or more
pages of GET /v1/draws/{id}/spins (a page, or a list of spins). Exit 0 when every outcome
follows from the seed, 1 on a mismatch (each printed), 2 on bad input.
"""

import argparse
import hashlib
import hmac
import json
import sys
from datetime import datetime

ALGORITHM = "campaign-draw-v1"
MAX = 2**64 - 1


def uniform(seed, message, label, bound):
    bound = max(bound, 1)
    zone = MAX // bound * bound
    rnd = 0
    while True:
        mac = hmac.new(seed, f"{message}\n{label}\n{rnd}".encode(), hashlib.sha256).digest()
        for i in range(0, 32, 8):
            r = int.from_bytes(mac[i:i + 8], "big")
            if r < zone:
                return r % bound
        rnd += 1


def pick(weights, number):
    total = 0
    for i, w in enumerate(weights):
        total += w
        if number < total:
            return i
    return None


def outcome(draw, seed, message, since_rare, won, out_of_stock):
    prizes = draw["prizes"]
    weights = [p["weight"] for p in prizes]
    drawn = prizes[pick(weights, uniform(seed, message, "draw", sum(weights))) or 0]

    def under_max(p):
        m = p.get("per_member_max")
        return m is None or won.get(p["prize_id"], 0) < m

    def in_stock(p):
        return p["prize_id"] not in out_of_stock

    def available(p):
        return in_stock(p) and under_max(p)

    pity = (draw.get("pity") or {}).get("after")
    pity_due = pity is not None and since_rare + 1 >= pity
    if available(drawn) and (drawn.get("rare") or not pity_due):
        return drawn["prize_id"], drawn["prize_id"], "drawn"
    if pity_due:
        rare = [p for p in prizes if p.get("rare") and p["weight"] > 0 and available(p)]
        total = sum(p["weight"] for p in rare)
        if total > 0:
            i = pick([p["weight"] for p in rare], uniform(seed, message, "pity", total)) or 0
            return drawn["prize_id"], rare[i]["prize_id"], "pity"
    why = "out_of_stock" if under_max(drawn) or not in_stock(drawn) else "member_max"
    return drawn["prize_id"], draw["consolation"], why


def instant(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def verify(reveal, draw, member, spins):
    problems = []
    seed = bytes.fromhex(reveal["server_seed"])
    commitment = hashlib.sha256(seed).hexdigest()
    if len(seed) != 32 or commitment != reveal["commitment"] or commitment != draw.get("commitment", commitment):
        problems.append(f"SHA-256 of the seed is {commitment}, not the commitment published")
    rare = {p["prize_id"] for p in draw["prizes"] if p.get("rare")}
    previous = None
    for spin in sorted(spins, key=lambda s: s["spin"]):
        n, proof = spin["spin"], spin["proof"]
        since_rare, won = proof["since_rare"], dict(proof["won"])
        if previous is not None and previous[0] + 1 == n:
            _, was_since, was_won, prize = previous
            expected_won = dict(was_won)
            expected_won[prize] = expected_won.get(prize, 0) + 1
            expected = (0 if prize in rare else was_since + 1, expected_won)
        elif n == 1:
            expected = (0, {})
        else:
            expected = None
        if expected is not None and expected != (since_rare, won):
            problems.append(f"spin {n}: recorded state {(since_rare, won)}, expected {expected}")
        for prize in proof["out_of_stock"]:
            ran_out = reveal.get("ran_out", {}).get(prize)
            if ran_out is None or instant(ran_out) > instant(spin["at"]):
                problems.append(f"spin {n}: {prize} claimed out of stock before it ran out")
        message = f"{ALGORITHM}\n{reveal['draw_id']}\n{member}\n{n}\n{proof['client_seed']}"
        got = (proof["drawn"], spin["prize"]["prize_id"], proof["why"])
        want = outcome(draw, seed, message, since_rare, won, set(proof["out_of_stock"]))
        if got != want:
            problems.append(f"spin {n}: recorded {got}, the seed gives {want}")
        previous = (n, since_rare, won, spin["prize"]["prize_id"])
    return problems


def load_spins(value):
    pages = value if isinstance(value, list) and value and "spins" in value[0] else [value]
    spins = []
    for page in pages:
        spins.extend(page["spins"] if isinstance(page, dict) else page)
    return spins


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--reveal", "--draw", "--spins", "--member"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    try:
        with open(args.reveal) as r, open(args.draw) as d, open(args.spins) as s:
            reveal, draw, spins = json.load(r), json.load(d), load_spins(json.load(s))
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(e, file=sys.stderr)
        return 2
    problems = verify(reveal, draw, args.member, spins)
    for p in problems:
        print("MISMATCH", p)
    if not problems:
        print(f"verified {len(spins)} spins: every outcome follows from the revealed seed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
