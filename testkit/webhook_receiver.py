#!/usr/bin/env python3
"""A webhook receiver for the integration tests (testkit/src/webhooks.rs starts it).

Every POST, whatever its path, is checked with the `standardwebhooks` package: an
implementation of the Standard Webhooks signature that is not ours. A request verifies if
any `--secret` verifies it. Unverified requests are answered 400; verified ones as the mode
says. Each request gets one JSON line in `--out`:

    {"webhook_id": "evt_12", "timestamp": 1765103400, "verified": true, "status": 200,
     "body": {...} or null, "received_at": 1765103400.12}

`received_at` is when the request arrived; lines are in the order the answers were decided
(in `slow` mode the two can differ). The line is written before the answer is sent, so once
the worker has seen an answer its line is in the file. A request whose answer never reached the worker (it was
killed, or gave up waiting) is in the file too, with the status the receiver meant to send.

Modes (`--mode`, or `PUT /mode` with the mode as the body, answered 204):
    ok               200
    fail-first=N     500 to the first N verified requests with a given webhook-id, then 200
    always=CODE      CODE to every verified request (e.g. 500, 503, 410)
    slow=SECONDS     sleep SECONDS, then 200

Usage:
    python3 webhook_receiver.py --secret whsec_... [--secret whsec_...] --out FILE
                                [--mode MODE] [--port 0]

It binds 127.0.0.1 (port 0: one the kernel picks) and prints `listening <port>` as its
only line on stdout. SIGTERM or SIGINT stops it at once.
"""

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from standardwebhooks.webhooks import Webhook
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit("webhook_receiver.py needs the standardwebhooks package: "
             "python3 -m pip install standardwebhooks")


def parse_mode(text):
    """`ok`, `fail-first=N`, `always=CODE` or `slow=SECONDS` as (name, value); ValueError if not."""
    name, _, value = text.strip().partition("=")
    if name == "ok" and not value:
        return ("ok", None)
    if name == "fail-first" and value.isdigit():
        return ("fail-first", int(value))
    if name == "always" and value.isdigit() and 100 <= int(value) <= 599:
        return ("always", int(value))
    if name == "slow":
        seconds = float(value)
        if seconds >= 0:
            return ("slow", seconds)
    raise ValueError(f"unknown mode {text!r}")


class State:
    """What the request threads share; `lock` guards `mode`, `tries` and writes to `out`."""

    def __init__(self, secrets, out_path, mode):
        self.verifiers = [Webhook(s) for s in secrets]
        self.lock = threading.Lock()
        self.mode = mode
        self.tries = {}  # webhook-id -> verified requests seen with it
        # Unbuffered: each line goes to the file in one write, so a reader sees whole lines.
        self.out = open(out_path, "ab", buffering=0)

    def verified(self, body, headers):
        for wh in self.verifiers:
            try:
                # Raises WebhookVerificationError on a missing header, a timestamp more than
                # 5 minutes off, or no matching signature. It also parses the body as JSON,
                # so a body that is not JSON does not verify either.
                wh.verify(body, headers)
                return True
            except Exception:
                continue
        return False

    def record(self, line):
        data = (json.dumps(line) + "\n").encode()
        with self.lock:
            while data:
                data = data[self.out.write(data):]


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as real receivers do; every answer carries a Content-Length.
    protocol_version = "HTTP/1.1"
    state = None  # set in main()

    def do_POST(self):
        received_at = time.time()
        state = self.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        webhook_id = self.headers.get("webhook-id")  # case-insensitive lookup
        verified = state.verified(body, dict(self.headers.items()))

        if not verified:
            status, text = 400, "signature not verified"
        else:
            with state.lock:
                name, value = state.mode
                state.tries[webhook_id] = tries = state.tries.get(webhook_id, 0) + 1
            if name == "slow":
                time.sleep(value)
            if name == "always":
                status, text = value, f"always {value}"
            elif name == "fail-first" and tries <= value:
                status, text = 500, f"failing on purpose ({tries} of {value})"
            else:
                status, text = 200, "ok"

        state.record({
            "webhook_id": webhook_id,
            "timestamp": to_int(self.headers.get("webhook-timestamp")),
            "verified": verified,
            "status": status,
            "body": to_json(body),
            "received_at": received_at,
        })
        self.answer(status, text)

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/mode":
            return self.answer(404, "not found")
        try:
            mode = parse_mode(body.decode())
        except ValueError as e:
            return self.answer(400, str(e))
        with self.state.lock:
            self.state.mode = mode
        self.answer(204, None)

    def answer(self, status, text):
        data = b"" if text is None else (text + "\n").encode()
        try:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The sender went away (killed, or timed out); the request is already recorded.
            self.close_connection = True

    def log_message(self, *args):
        pass  # quiet: the out file is the log


def to_int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def to_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return None


def main():
    parser = argparse.ArgumentParser(description="Standard Webhooks test receiver")
    parser.add_argument("--secret", action="append", required=True,
                        help="a whsec_ secret; repeat for several (any one verifies)")
    parser.add_argument("--out", required=True, help="file to append one JSON line per request to")
    parser.add_argument("--mode", default="ok", type=parse_mode,
                        help="ok | fail-first=N | always=CODE | slow=SECONDS")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    args = parser.parse_args()

    # SIGTERM and SIGINT are blocked here, before any thread starts, so every thread inherits
    # the mask and the signal waits for sigwait() below. (A handler would run only in the main
    # thread, and only once the kernel happened to interrupt it, which could take a while.)
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    Handler.state = State(args.secret, args.out, args.mode)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    # One thread per connection, daemonic (ThreadingHTTPServer's default), and the server's
    # loop is one too: none is kept once its connection closes, and none holds up the exit.
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"listening {server.server_address[1]}", flush=True)

    signal.sigwait(stop_signals)
    # Returning ends the process and its daemon threads: requests still in flight are cut
    # off, and every line already recorded is in the file (it is unbuffered).


if __name__ == "__main__":
    main()
