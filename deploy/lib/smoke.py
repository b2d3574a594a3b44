"""End-to-end checks of the local mail stack; run by deploy/smoke.sh (which creates the test
domain and mailboxes and removes them afterwards). Python 3 standard library only.

Reads the MAILAPI_* settings from the environment (/etc/mailapi/mailapi.env) and:
  SMOKE_DOMAIN          the throwaway domain smoke.sh inserted
  SMOKE_TAG             unique tag used in Message-IDs (to find our mail in logs and sink dumps)
  SMOKE_USER_PASSWORD   password of alice@ and bounces@ SMOKE_DOMAIN
Prints PASS/FAIL per check and "N passed, N failed"; exits 1 if anything failed.
"""

import functools
import imaplib
import os
import re
import smtplib
import sys
import time

ENV = os.environ
DOMAIN = ENV["SMOKE_DOMAIN"]
TAG = ENV["SMOKE_TAG"]
USER_PW = ENV["SMOKE_USER_PASSWORD"]
ALICE = f"alice@{DOMAIN}"
BOUNCES = f"bounces@{DOMAIN}"
MX = (ENV["MAILAPI_MX_HOST"], int(ENV["MAILAPI_MX_PORT"]))
SUBMISSION = (ENV["MAILAPI_SMTP_HOST"], int(ENV["MAILAPI_SMTP_PORT"]))
SUBMIT_USER = ENV["MAILAPI_SMTP_USERNAME"]
SUBMIT_PW = ENV["MAILAPI_SMTP_PASSWORD"]
IMAP = (ENV["MAILAPI_IMAP_HOST"], int(ENV["MAILAPI_IMAP_PORT"]))
MASTER_USER = ENV["MAILAPI_IMAP_MASTER_USER"]
MASTER_PW = ENV["MAILAPI_IMAP_MASTER_PASSWORD"]
MTA_LOG = ENV["MAILAPI_MTA_LOG_PATH"]
SINK_DIR = ENV["MAILAPI_SINK_DIR"]
MAX_BYTES = int(ENV["MAILAPI_SMTP_MAX_MESSAGE_BYTES"])
WAIT = float(ENV.get("SMOKE_TIMEOUT", "30"))

results = []


def report(ok, name, detail=""):
    results.append(ok)
    line = f"{'PASS' if ok else 'FAIL'} {name}"
    if detail:
        line += f" -- {detail}"
    print(line, flush=True)
    return ok


def check(name):
    """Decorator: run the check, turn an exception into a FAIL with its message."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            try:
                ok, detail = fn(*args)
            except Exception as e:  # noqa: BLE001 - a smoke test reports, it does not crash
                ok, detail = False, f"{type(e).__name__}: {e}"
            return report(ok, name, detail)

        return run

    return wrap


def wait_for(predicate, timeout=WAIT, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def message(mid, sender, to, subject):
    return (
        f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}>\r\nDate: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"mail-stack smoke test {TAG}\r\n"
    )


def smtp_send(addr, sender, rcpt, mid, login=None):
    """One transaction; returns the queue id from '250 2.0.0 Ok: queued as QID'."""
    with smtplib.SMTP(*addr, local_hostname="smoke.mailapi.local", timeout=30) as s:
        s.ehlo()
        if login:
            s.login(*login)
        code, resp = s.mail(sender)
        if code != 250:
            raise RuntimeError(f"MAIL FROM: {code} {resp.decode()}")
        code, resp = s.rcpt(rcpt)
        if code not in (250, 251):
            raise RuntimeError(f"RCPT TO: {code} {resp.decode()}")
        code, resp = s.data(message(mid, sender, rcpt, f"smoke {TAG}"))
        if code != 250:
            raise RuntimeError(f"DATA: {code} {resp.decode()}")
        return resp.decode().split()[-1]


def rcpt_reply(addr, sender, rcpt, login=None):
    """(code, text) of RCPT TO for rcpt, without sending anything."""
    with smtplib.SMTP(*addr, local_hostname="smoke.mailapi.local", timeout=30) as s:
        s.ehlo()
        if login:
            s.login(*login)
        s.mail(sender)
        code, resp = s.rcpt(rcpt)
        s.rset()
        return code, resp.decode()


LOG_START = os.path.getsize(MTA_LOG) if os.path.exists(MTA_LOG) else 0


def log_lines():
    try:
        with open(MTA_LOG, encoding="utf-8", errors="replace") as f:
            if os.path.getsize(MTA_LOG) >= LOG_START:
                f.seek(LOG_START)
            return f.read().splitlines()
    except FileNotFoundError:  # just rotated: absent until the next line
        return []


def wait_log_delivery(qid, rcpt):
    """The per-recipient delivery line of qid for rcpt with a final status (not deferred)."""
    pattern = re.compile(rf" {re.escape(qid)}: to=<{re.escape(rcpt)}>,.* status=(sent|bounced)")

    def find():
        for line in log_lines():
            if pattern.search(line):
                return line
        return None

    return wait_for(find)


def imap_login(user, password):
    conn = imaplib.IMAP4(*IMAP, timeout=30)
    try:
        conn.login(user, password)
    except Exception:
        conn.logout()
        raise
    return conn


def imap_find(conn, mid, criterion="HEADER Message-ID"):
    conn.select("INBOX", readonly=True)
    typ, data = conn.search(None, f'({criterion} "{mid}")')
    return data[0].split() if typ == "OK" else []


def sink_files_with(mid):
    needle = mid.encode()
    found = []
    for name in os.listdir(SINK_DIR):
        path = os.path.join(SINK_DIR, name)
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    found.append(path)
        except (IsADirectoryError, FileNotFoundError):
            pass
    return found


MID_MX = f"smoke-{TAG}-mx@smoke.mailapi.local"
MID_OK = f"smoke-{TAG}-sink-ok@smoke.mailapi.local"
MID_HARD = f"smoke-{TAG}-sink-hard@smoke.mailapi.local"
MID_UNKNOWN = f"smoke-{TAG}-unknown-local@smoke.mailapi.local"
state = {}


# --- Port 25: the MX role -----------------------------------------------------------------------


@check("port 25 accepts mail for a hosted mailbox")
def mx_accepts():
    state["qid_mx"] = smtp_send(MX, "someone@example.org", ALICE, MID_MX)
    return True, f"queued as {state['qid_mx']}"


@check("port 25 message delivered to Dovecot (log status=sent)")
def mx_delivered():
    line = wait_log_delivery(state["qid_mx"], ALICE)
    return bool(line and "status=sent" in line and "dovecot-lmtp" in line), line or "no delivery line in log"


@check("port 25 refuses an unknown user of a hosted domain at RCPT")
def mx_unknown_user():
    code, text = rcpt_reply(MX, "someone@example.org", f"nobody@{DOMAIN}")
    return code == 550 and "5.1.1" in text, f"{code} {text}"


@check("port 25 is not an open relay (sink-ok.test refused without auth)")
def mx_no_relay():
    code, text = rcpt_reply(MX, "someone@example.org", f"someone-{TAG}@sink-ok.test")
    return 500 <= code < 600 and "Relay access denied" in text, f"{code} {text}"


# --- IMAP -----------------------------------------------------------------------------------------


@check("IMAP login as the mailbox user finds the message")
def imap_user_finds():
    conn = imap_login(ALICE, USER_PW)
    try:
        hits = wait_for(lambda: imap_find(conn, MID_MX), timeout=10)
        return bool(hits), f"INBOX seq {hits}"
    finally:
        conn.logout()


@check("IMAP folders Drafts/Sent/Trash/Spam exist with special-use flags")
def imap_folders():
    conn = imap_login(ALICE, USER_PW)
    try:
        want = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Trash": "\\Trash", "Spam": "\\Junk"}

        def folders(data):  # {name: flags} from LIST/LSUB lines like (\HasNoChildren \Sent) "/" Sent
            out = {}
            for raw in data:
                m = re.match(r'\(([^)]*)\) "[^"]*" "?([^"]*)"?$', raw.decode())
                if m:
                    out[m.group(2)] = m.group(1).split()
            return out

        listed = folders(conn.list()[1])
        missing = [f for f, flag in want.items() if flag not in listed.get(f, [])]
        subscribed = folders(conn.lsub()[1])
        unsubscribed = [f for f in want if f not in subscribed]
        ok = not missing and not unsubscribed
        return ok, f"missing {missing}, unsubscribed {unsubscribed}" if not ok else str(listed)
    finally:
        conn.logout()


@check("IMAP master login (\"user*mailapi-master\", quoted) finds the message")
def imap_master_finds():
    conn = imap_login(f'"{ALICE}*{MASTER_USER}"', MASTER_PW)
    try:
        hits = imap_find(conn, MID_MX)
        return bool(hits), f"INBOX seq {hits}"
    finally:
        conn.logout()


@check("IMAP login as the SASL-only submission user fails")
def imap_submit_user_refused():
    try:
        conn = imap_login(SUBMIT_USER, SUBMIT_PW)
    except imaplib.IMAP4.abort as e:  # dropped connection = Dovecot internal error, not a clean NO
        return False, f"connection dropped instead of NO: {e}"
    except imaplib.IMAP4.error as e:
        return True, str(e)
    conn.logout()
    return False, "login succeeded"


# --- Port 587: submission -----------------------------------------------------------------------


@check("port 587 refuses clients that did not authenticate")
def submission_needs_auth():
    code, text = rcpt_reply(SUBMISSION, BOUNCES, f"someone-{TAG}@sink-ok.test")
    return 500 <= code < 600, f"{code} {text}"


@check("port 587 advertises AUTH and SIZE = MAILAPI_SMTP_MAX_MESSAGE_BYTES")
def submission_ehlo():
    with smtplib.SMTP(*SUBMISSION, local_hostname="smoke.mailapi.local", timeout=30) as s:
        s.ehlo()
        auth, size = s.esmtp_features.get("auth", ""), s.esmtp_features.get("size", "")
    return "PLAIN" in auth.upper() and size == str(MAX_BYTES), f"AUTH {auth}; SIZE {size}"


@check("port 587 with AUTH delivers to sink-ok.test: exactly one dump file")
def submission_sink_ok():
    rcpt = f"ok-{TAG}@sink-ok.test"
    qid = smtp_send(SUBMISSION, f"bounces+{TAG}@{DOMAIN}", rcpt, MID_OK, login=(SUBMIT_USER, SUBMIT_PW))
    line = wait_log_delivery(qid, rcpt)
    if not line or "status=sent" not in line:
        return False, f"{qid}: {line or 'no delivery line in log'}"
    files = wait_for(lambda: sink_files_with(MID_OK), timeout=10)
    time.sleep(0.5)  # a duplicate would arrive right after: make sure there is none
    files = sink_files_with(MID_OK)
    return len(files) == 1, f"{qid} -> {files}"


@check("port 587 to sink-hard.test bounces (log status=bounced, 5.x.x)")
def submission_sink_hard():
    rcpt = f"hard-{TAG}@sink-hard.test"
    qid = smtp_send(SUBMISSION, f"bounces+{TAG}@{DOMAIN}", rcpt, MID_HARD, login=(SUBMIT_USER, SUBMIT_PW))
    line = wait_log_delivery(qid, rcpt)
    state["qid_hard"] = qid
    return bool(line and "status=bounced" in line and " dsn=5." in line), line or f"{qid}: no delivery line"


def bounce_report_for(mid):
    """The bounce report about mid in bounces@'s INBOX (read as the master user)."""
    conn = imap_login(f'"{BOUNCES}*{MASTER_USER}"', MASTER_PW)
    try:
        # SEARCH TEXT also sees the attached original's headers (BODY does not).
        hits = wait_for(lambda: imap_find(conn, mid, "TEXT"), timeout=WAIT)
        if not hits:
            return False, "no report in bounces INBOX"
        typ, data = conn.fetch(hits[-1], "(BODY.PEEK[HEADER.FIELDS (CONTENT-TYPE DELIVERED-TO)])")
        headers = data[0][1].decode()
        ok = "report-type=delivery-status" in headers and f"bounces+{TAG}@" in headers
        return ok, " ".join(headers.split())
    finally:
        conn.logout()


@check("bounce report for sink-hard.test reaches the VERP sender's mailbox")
def bounce_report_hard():
    return bounce_report_for(MID_HARD)


@check("port 587 accepts an unknown local user, then LMTP bounces it (5.1.1)")
def submission_unknown_local():
    rcpt = f"nobody-{TAG}@{DOMAIN}"
    qid = smtp_send(SUBMISSION, f"bounces+{TAG}@{DOMAIN}", rcpt, MID_UNKNOWN, login=(SUBMIT_USER, SUBMIT_PW))
    line = wait_log_delivery(qid, rcpt)
    return bool(line and "status=bounced" in line and "dsn=5.1.1" in line), line or f"{qid}: no delivery line"


@check("bounce report for the unknown local user reaches the VERP sender's mailbox")
def bounce_report_unknown_local():
    return bounce_report_for(MID_UNKNOWN)


def main():
    for fn in (
        mx_accepts,
        mx_delivered,
        mx_unknown_user,
        mx_no_relay,
        imap_user_finds,
        imap_folders,
        imap_master_finds,
        imap_submit_user_refused,
        submission_needs_auth,
        submission_ehlo,
        submission_sink_ok,
        submission_sink_hard,
        bounce_report_hard,
        submission_unknown_local,
        bounce_report_unknown_local,
    ):
        if fn in (mx_delivered, imap_user_finds, imap_master_finds) and "qid_mx" not in state:
            report(False, fn.__name__, "skipped: nothing was queued on port 25")
            continue
        fn()
    passed, failed = results.count(True), results.count(False)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
