"""The whole events/ story through the project's local API: scripts/sam-local-events.py in its
`--local-api` mode (the way it is tested without Docker) against `target/debug/local-api` on a
fresh table in DynamoDB Local.

Needs `cargo build --bins` first and DynamoDB Local with AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set (scripts/test.sh does both).
"""

import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sam-local-events.py"
LOCAL_API = ROOT / "target" / "debug" / "local-api"
OPS = ROOT / "target" / "debug" / "campaign-ops"
SAMPLE_HOLD = "01KAW0M9B4E8Y6T3R1Q2P5N7XZ"
START_TIMEOUT = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold_id(line):
    match = re.search(r'"hold_id":"([0-9A-Za-z]+)"', line)
    return match.group(1) if match else None


class EventsStory(unittest.TestCase):
    def setUp(self):
        if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
            self.fail(
                "AWS_ENDPOINT_URL_DYNAMODB is not set: this test needs DynamoDB Local "
                "(and AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); scripts/test.sh sets them"
            )
        if not LOCAL_API.exists():
            self.fail(f"{LOCAL_API} is missing: run `cargo build --bins` first")
        self.port = free_port()
        self.table = f"story-{uuid.uuid4().hex[:12]}"
        env = {
            name: value
            for name, value in os.environ.items()
            if name.startswith("AWS_") or name in ("PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE")
        }
        env.update(TABLE_NAME=self.table, CAMPAIGN_DEV_CLOCK="1", LOCAL_API_PORT=str(self.port))
        # A file, not a pipe: nobody reads the server's output while the story runs.
        self.log = tempfile.TemporaryFile()
        self.server = subprocess.Popen(
            [str(LOCAL_API)], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.addCleanup(self.stop_server)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.server.poll() is not None:
                self.fail(f"local-api exited with {self.server.returncode}:\n{self.server_log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.fail(
                        f"local-api did not listen on {self.port} within {START_TIMEOUT} s:\n"
                        f"{self.server_log()}"
                    )
                time.sleep(0.2)

    def stop_server(self):
        if self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        self.log.close()

    def server_log(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def test_the_whole_story_answers_through_the_local_api(self):
        run = subprocess.run(
            [sys.executable, str(SCRIPT), "--local-api", f"http://127.0.0.1:{self.port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = run.stdout
        context = f"\n--- stdout\n{output}\n--- stderr\n{run.stderr}"
        self.assertEqual(run.returncode, 0, f"the story failed{context}\n--- local-api\n{self.server_log()}")

        lines = output.splitlines()
        for path in sorted((ROOT / "events").rglob("*")):
            if path.is_file():
                name = path.relative_to(ROOT / "events").as_posix()
                self.assertTrue(
                    any(line.startswith(name + ":") or line.startswith(name + " (") for line in lines),
                    f"events/{name} is not in the output{context}",
                )
        self.assertRegex(output, r"(?m)^\d+ events, \d+ answered 2xx$")

        def line_of(prefix):
            found = [line for line in lines if line.startswith(prefix)]
            self.assertEqual(len(found), 1, f"one line for {prefix}{context}")
            return found[0]

        holds = [line for line in lines if line.startswith("post-v1-admin-points-holds.json")]
        self.assertEqual(len(holds), 2, f"two holds (one captured, one released){context}")
        held = [hold_id(line) for line in holds]
        for line, made in zip(holds, held):
            self.assertRegex(line, r"^[^:]+: 200 ", context)
            self.assertIsNotNone(made, f"no hold_id in {line}")
            self.assertNotEqual(made, SAMPLE_HOLD)
        self.assertNotEqual(held[0], held[1], f"the release needs a hold of its own{context}")

        for file, status, made in (
            ("post-v1-admin-points-holds-hold_id-capture.json", "captured", held[0]),
            ("post-v1-admin-points-holds-hold_id-release.json", "released", held[1]),
        ):
            line = line_of(file + ":")
            self.assertRegex(line, r"^[^:]+: 2\d\d ", f"{file} did not answer 2xx{context}")
            self.assertEqual(hold_id(line), made, f"{file} must act on the real hold{context}")
            self.assertNotEqual(hold_id(line), SAMPLE_HOLD)
            self.assertIn(f'"status":"{status}"', line)

        # The table the whole story wrote keeps every invariant (`campaign-ops audit`).
        env = {
            name: value
            for name, value in os.environ.items()
            if name.startswith("AWS_") or name in ("PATH", "HOME")
        }
        env["TABLE_NAME"] = self.table
        audit = subprocess.run([str(OPS), "audit"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        self.assertEqual(audit.returncode, 0, f"the audit failed:\n{audit.stdout}{audit.stderr}")
        self.assertIn("clean: every invariant holds", audit.stdout)
        self.assertRegex(audit.stdout, r"draw\.stock +[1-9]\d* checked +ok")
        self.assertRegex(audit.stdout, r"contest\.prize +[1-9]\d* checked +ok")


if __name__ == "__main__":
    unittest.main()
