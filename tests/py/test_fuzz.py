"""Contract fuzzing: Schemathesis (pinned, installed by scripts/setup.sh) against the local API with
openapi.yaml, through scripts/fuzz.py (its docstring says what it runs and checks).

Every route with a member, an admin and a service token; the stateful links hold -> capture /
release, draw -> spin and contest -> join; a fixed seed; FUZZ_EXAMPLES (default 50) examples per
operation; `campaign-ops audit` on the table after it; then the same routes with the store
unreachable. Fails on an audit violation, a linked flow never followed, or any Schemathesis
failure: a 500, a 503 without `Retry-After`, a response (status, content type, headers, body,
problem type) the contract does not describe, a schema-valid request refused with 400 or a
schema-invalid one accepted; the report, with curl reproductions, is in the failure message.

Needs `cargo build --bins` first and DynamoDB Local with AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set (scripts/test.sh does both).
"""

import os
import pathlib
import subprocess
import unittest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FUZZ = ROOT / "scripts" / "fuzz.py"
LOCAL_API = ROOT / "target" / "debug" / "local-api"
VENV = ROOT / ".local" / "venv" / "bin"
TIMEOUT = 1800  # s; about 4 minutes on 2 cores with the default 50 examples


class ContractFuzzing(unittest.TestCase):
    def test_schemathesis_finds_no_failure(self):
        if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            self.fail(
                "AWS_ENDPOINT_URL_DYNAMODB is not set: this test needs DynamoDB Local "
                "(and AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); scripts/test.sh sets them"
            )
        if not LOCAL_API.exists():
            self.fail(f"{LOCAL_API} is missing: run `cargo build --bins` first")
        if not (VENV / "st").exists():
            self.fail(f"{VENV / 'st'} is missing: run scripts/setup.sh (it installs the pinned Schemathesis)")
        run = subprocess.run(
            [str(VENV / "python"), str(FUZZ)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        self.assertEqual(
            run.returncode,
            0,
            f"Schemathesis found failures (scripts/fuzz.py exited {run.returncode}); full reports and the "
            f"server logs are in .local/fuzz/\n--- scripts/fuzz.py\n{run.stdout}\n--- stderr\n{run.stderr[-4000:]}",
        )


if __name__ == "__main__":
    unittest.main()
