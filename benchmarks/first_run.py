"""The first run as a new user meets it: a fresh clone, an empty model cache, ``make demo``, timed.

Clones this checkout's committed HEAD into a temporary folder (no venv, no report, nothing built), points
``STMLTM_CACHE`` at an empty folder (the GGUF file is converted again, no teacher target is cached) and turns pip's
own cache off (``PIP_NO_CACHE_DIR=1``: every package comes from the registry, as on a new machine). Then, in the
clone: ``make venv`` (the set-up ``make demo`` does first), timed, and ``stmltm demo``, timed, its timestamped phase
lines read as they come. Writes to ``--out``: set-up and demo seconds (wall), each phase's seconds (from its line to
the next), the warning lines each printed (pip's notices about this machine's own missing index folders counted
apart: any ``pip install`` here prints them), and the demo's verdict. Run alone: a second torch job on the same cores
slows both.

    python benchmarks/first_run.py --out benchmarks/results/first_run.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASE = re.compile(r"^\[(\d\d):(\d\d):(\d\d)\] (.+)$")  # stmltm_nb.apps.log's timestamped lines
WARNING = re.compile(r"warn", re.IGNORECASE)
# pip's notice about an extra index folder that the machine's own pip configuration names and that does not exist:
# the machine's, printed by any `pip install` there, not the project's
MACHINE_PIP = re.compile(r"WARNING: Location 'file:///.*' is ignored")


def phase_seconds(lines: list[tuple[float, str]], start: float, end: float) -> list[dict]:
    """Each phase's seconds from ``(seconds since the demo started, line)``: a phase runs from its timestamped line
    to the next one (the last to ``end``); what came before the first line is "start-up (model load)".
    ``max_silence_s``: the longest stretch of the phase with no output line at all (a progress bar's update counts)."""
    marks = [(t, m.group(4)) for t, line in lines if (m := PHASE.match(line.strip()))]
    bounds = [(start, marks[0][0] if marks else end, "start-up (model load, conversion on a fresh machine)")]
    bounds += [(t, nxt, name) for (t, name), nxt in zip(marks, [t for t, _ in marks[1:]] + [end])]
    out = []
    for a, b, name in bounds:
        times = [a] + [t for t, _ in lines if a < t < b] + [b]
        out.append({"phase": name, "seconds": b - a,
                    "max_silence_s": max(y - x for x, y in zip(times, times[1:]))})
    return out


def split_warnings(lines: list[str]) -> tuple[list[str], int]:
    """The warning lines of ``lines`` that are the project's, and how many were the machine's pip notices
    (:data:`MACHINE_PIP`)."""
    found = warnings_in("\n".join(lines))
    return [w for w in found if not MACHINE_PIP.search(w)], sum(bool(MACHINE_PIP.search(w)) for w in found)


def warnings_in(text: str) -> list[str]:
    """Lines of ``text`` (split at newlines and carriage returns) that carry a warning."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if WARNING.search(line)]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, list[tuple[float, str]], int]:
    """Run ``cmd``; return its wall seconds, every output line with the seconds at which it arrived, and its exit
    code (stdout and stderr together; tqdm's carriage-return updates split into lines)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[tuple[float, str]] = []
    buf = b""
    assert proc.stdout is not None
    while chunk := proc.stdout.read1(4096):
        buf += chunk
        *done, buf = re.split(rb"[\r\n]", buf)
        now = time.perf_counter() - t0
        lines += [(now, d.decode(errors="replace")) for d in done if d.strip()]
    if buf.strip():
        lines.append((time.perf_counter() - t0, buf.decode(errors="replace")))
    rc = proc.wait()
    return time.perf_counter() - t0, lines, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("first_run.json"))
    ap.add_argument("--keep", action="store_true", help="keep the clone and its cache (printed) for a look")
    args = ap.parse_args()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    work = Path(tempfile.mkdtemp(prefix="stmltm-first-run-"))
    clone, cache = work / "clone", work / "cache"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    cache.mkdir()
    env = {**os.environ, "STMLTM_CACHE": str(cache), "PIP_NO_CACHE_DIR": "1"}
    env.pop("VIRTUAL_ENV", None)  # the clone's make builds its own venv with the system python3, as a new user's does
    print(f"fresh clone of {head.strip()[:12]} in {clone}; empty cache {cache}", flush=True)
    setup_s, setup_lines, rc = timed(["make", "venv"], clone, env)
    print(f"set-up (make venv): {setup_s:.0f} s, exit {rc}", flush=True)
    if rc != 0:
        sys.exit("\n".join(line for _, line in setup_lines[-30:]))
    started = dt.datetime.now()
    demo_s, demo_lines, rc = timed([str(clone / ".venv" / "bin" / "stmltm"), "demo"], clone, env)
    print(f"stmltm demo: {demo_s:.0f} s, exit {rc}", flush=True)
    if rc != 0:
        sys.exit("\n".join(line for _, line in demo_lines[-30:]))
    report = json.loads((clone / "report" / "report.json").read_text())
    from stmltm_nb.env import machine

    setup_warnings, machine_pip = split_warnings([line for _, line in setup_lines])
    res = {"commit": head.strip(), "date": started.date().isoformat(), "machine": machine(),
           "setup_s": setup_s, "demo_s": demo_s, "total_s": setup_s + demo_s,
           "phases": phase_seconds(demo_lines, 0.0, demo_s),
           "setup_warnings": setup_warnings, "setup_machine_pip_notices": machine_pip,
           "demo_warnings": warnings_in("\n".join(line for _, line in demo_lines)),
           "n_facts": report["n_facts"], "steps": report["consolidation"]["config"]["steps"],
           "c_upd_s": report["consolidation"]["c_upd_s"], "consolidate": report["decision"]["consolidate"],
           "arm": report["decision"].get("arm"), "explanation": report["decision"]["explanation"]}
    for p in res["phases"]:
        print(f"  {p['phase']:<55} {p['seconds']:6.0f} s (longest silence {p['max_silence_s']:.0f} s)")
    print(f"set-up {setup_s:.0f} s + demo {demo_s:.0f} s = {res['total_s']:.0f} s; warning lines: set-up "
          f"{len(res['setup_warnings'])} (and {res['setup_machine_pip_notices']} of this machine's pip configuration), "
          f"demo {len(res['demo_warnings'])}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
