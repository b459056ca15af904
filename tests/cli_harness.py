"""What the command-line tests against hostile input share: running `footprint` as a user does,
with its exit status, stdout, stderr, wall time and peak RSS, and the checks every case makes.

The peak RSS is the largest of footprint's and of the processes it waited for (the engine):
a wrapper forks footprint and reports the rusage of its children (RUSAGE_CHILDREN's ru_maxrss).
"""
import json
import os
import re
import subprocess
import sys
import time

failures = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def clean_line(err):
    """stderr is one line, printable, with no C++ stack and no Python traceback."""
    lines = err.splitlines()
    return (len(lines) == 1 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", err)
            and "frame #" not in err and "Traceback" not in err)


def printable(text):
    """No raw control character but the newlines between lines."""
    return not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", text)


def parses(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


class Cli:
    def __init__(self, cli, work):
        self.cli = os.path.abspath(cli)
        self.wrap = os.path.join(work, "rss.py")
        os.makedirs(work, exist_ok=True)
        with open(self.wrap, "w") as f:
            f.write("import os, sys, resource\n"
                    "pid = os.fork()\n"
                    "if pid == 0:\n    os.execv(sys.argv[1], sys.argv[1:])\n"
                    "_, status, usage = os.wait4(pid, 0)\n"
                    "kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
                    "sys.stderr.write(f'\\nRSS_KIB {max(usage.ru_maxrss, kids)}\\n')\n"
                    "sys.exit(os.waitstatus_to_exitcode(status) % 256)\n")

    def __call__(self, *args, env=None, timeout=180, cwd=None):
        """(exit status, stdout, stderr, seconds, peak RSS in MiB)."""
        start = time.monotonic()
        p = subprocess.run([sys.executable, self.wrap, self.cli, *args], capture_output=True,
                           text=True, env={**os.environ, **(env or {})}, timeout=timeout,
                           errors="replace", cwd=cwd)
        seconds = time.monotonic() - start
        err, rss = p.stderr, 0
        m = re.search(r"\nRSS_KIB (\d+)\n$", err)
        if m:
            rss, err = int(m.group(1)) / 1024, err[: m.start()]
        return p.returncode, p.stdout, err, seconds, rss


def expect(cli, name, args, status, line=None, max_seconds=60, max_rss_mib=1536, cwd=None,
           env=None):
    """Runs `footprint ARGS --format json` and checks the contract: the exit status (None: 0, or
    1 for a limit), one clean
    line on stderr for a failure (naming `line`, a regex, when given), JSON on stdout, no raw
    control character anywhere, and the time and memory bounds. Returns (status, out, err)."""
    code, out, err, seconds, rss = cli(*args, "--format", "json", cwd=cwd, env=env)
    if status is None:  # it may finish or be stopped by a limit: either way, cleanly
        status = code if code in (0, 1) else 1
    check(code == status, f"{name}: exit status {code}, expected {status}; stderr: {err[-300:]!r}")
    if status in (1, 2):
        check(clean_line(err), f"{name}: one clean line on stderr: {err[-300:]!r}")
    if line:
        check(re.search(line, err) is not None, f"{name}: stderr says /{line}/: {err[-300:]!r}")
    check(parses(out), f"{name}: stdout is one JSON document: {out[:200]!r}")
    check(printable(out + err), f"{name}: no raw control character on stdout or stderr")
    check(seconds < max_seconds, f"{name}: {seconds:.1f} s, within {max_seconds} s")
    check(rss < max_rss_mib, f"{name}: peak RSS {rss:.0f} MiB, within {max_rss_mib} MiB")
    return code, out, err


def finish():
    if failures:
        print(f"\n{len(failures)} failed")
        sys.exit(1)
    print("\nall passed")
