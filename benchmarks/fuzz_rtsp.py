"""Coverage-guided fuzzing of everything a camera sends us (issue #12), with Atheris (libFuzzer).

    .venv/bin/pip install -e '.[fuzz]'                                   # atheris, coverage
    .venv/bin/python benchmarks/fuzz_rtsp.py --target rtsp --seconds 60
    .venv/bin/python benchmarks/fuzz_rtsp.py --seconds 60               # every target, one after another
    .venv/bin/python benchmarks/fuzz_rtsp.py --target sdp --reproduce crash-file

Targets (tests/ingest/fuzz_targets.py says what each feeds and checks): rtsp, sdp, interleaved,
rtp_h264, rtp_h265, rtcp. Each run starts from the seed corpus benchmarks/fuzz_corpus/<target>/
(real exchanges: benchmarks/fuzz_capture.py), grows a working copy of it in a temporary folder
(``--corpus DIR`` keeps it), and runs libFuzzer in a child process over the parser modules
(camera_hub/ingest/rtsp.py and rtp.py, instrumented by Atheris). Then it reports, per target:
executions and executions/s (libFuzzer's), Atheris' coverage counters, the line and branch
coverage of the parser modules reached by the final corpus (replayed under coverage.py), and any
crash: an exception other than the documented ones, a broken invariant, a hang past
``--timeout`` s, or memory past ``--rss-mb``, saved as a reproducer in ``--artifacts``
(default benchmarks/out/fuzz/). libFuzzer stops at the first crash of a target.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "benchmarks" / "fuzz_corpus"
PARSERS = ("camera_hub.ingest.rtsp", "camera_hub.ingest.rtp")
TARGETS = ("rtsp", "sdp", "interleaved", "rtp_h264", "rtp_h265", "rtcp")


def _paths() -> None:
    for p in (REPO, REPO / "tests" / "ingest"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


# ---------------------------------------------------------------------------- child: libFuzzer
def worker(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    _paths()
    with atheris.instrument_imports(include=list(PARSERS)):
        import camera_hub.ingest.rtp  # noqa: F401
        import camera_hub.ingest.rtsp  # noqa: F401
    import fuzz_targets

    fn = fuzz_targets.TARGETS[target]

    def one_input(data: bytes) -> None:
        fn(data)

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


# ---------------------------------------------------------------------------- parent
def run_target(target: str, seconds: int, args: argparse.Namespace) -> dict[str, object]:
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    work = Path(args.corpus).resolve() / target if args.corpus else Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    work.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in artifacts.iterdir()}
    cmd = [sys.executable, __file__, "--worker", target, "--", str(work), str(CORPUS / target),
           f"-max_total_time={seconds}", f"-timeout={args.timeout}", f"-rss_limit_mb={args.rss_mb}",
           f"-max_len={args.max_len}", f"-artifact_prefix={artifacts}/{target}-", "-print_final_stats=1"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    wall = time.monotonic() - t0
    log = proc.stderr + proc.stdout
    (artifacts / f"{target}.log").write_text(log)
    stats = {k: int(v) for k, v in re.findall(r"stat::(\w+):\s+(\d+)", log)}
    last = re.findall(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/(\S+)", log)
    crashes = sorted(p for p in artifacts.iterdir() if p.name not in before and p.name.startswith(f"{target}-")
                     and re.match(rf"{target}-(crash|timeout|oom|leak)-", p.name))
    execs = stats.get("number_of_executed_units", int(last[-1][0]) if last else 0)
    row = {
        "target": target, "seconds": round(wall, 1), "execs": execs,
        "execs_per_s": stats.get("average_exec_per_sec", round(execs / max(wall, 1e-9))),
        "cov": int(last[-1][1]) if last else 0, "ft": int(last[-1][2]) if last else 0,
        "corpus": len(list(work.iterdir())), "crashes": [str(p) for p in crashes], "rc": proc.returncode,
    }
    if crashes:
        tb = re.search(r"=== Uncaught Python exception: ===\n(.*?)(?:\n==\d+==|\Z)", log, re.S)
        row["traceback"] = tb[1].strip() if tb else log[-3000:]
    row.update(replay_coverage(target, [work, CORPUS / target]))
    if not args.corpus:
        shutil.rmtree(work, ignore_errors=True)
    return row


def replay_coverage(target: str, folders: list[Path]) -> dict[str, object]:
    """Line and branch coverage of the parser modules reached by the corpus, in a child (a
    fresh interpreter: the modules' own lines count too)."""
    code = (
        "import sys, json, coverage, pathlib\n"
        f"sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests' / 'ingest')!r}]\n"
        "files = [p for d in sys.argv[2:] for p in sorted(pathlib.Path(d).iterdir()) if p.is_file()]\n"
        f"cov = coverage.Coverage(branch=True, data_file=None, include=[{str(REPO / 'camera_hub/ingest/rtsp.py')!r},"
        f" {str(REPO / 'camera_hub/ingest/rtp.py')!r}])\n"
        "cov.start()\n"
        "import fuzz_targets\n"
        "fn, bad = fuzz_targets.TARGETS[sys.argv[1]], 0\n"
        "for p in files:\n"
        "    try: fn(p.read_bytes())\n"
        "    except BaseException: bad += 1\n"
        "cov.stop()\n"
        "out = {'inputs': len(files), 'replay_crashes': bad}\n"
        "for f in cov.get_data().measured_files():\n"
        "    a = cov._analyze(f)\n"
        "    n = a.numbers\n"
        "    out[pathlib.Path(f).name] = [n.n_statements - n.n_missing, n.n_statements,"
        " n.n_branches - n.n_missing_branches, n.n_branches]\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, target, *map(str, folders)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"coverage_error": proc.stderr[-2000:]}
    import json

    data = json.loads(proc.stdout.strip().splitlines()[-1])
    lines = [sum(v[i] for k, v in data.items() if k.endswith(".py")) for i in range(4)]
    data["lines"] = f"{lines[0]}/{lines[1]} ({100 * lines[0] / max(lines[1], 1):.0f} %)"
    data["branches"] = f"{lines[2]}/{lines[3]} ({100 * lines[2] / max(lines[3], 1):.0f} %)"
    return data


def reproduce(target: str, files: list[str]) -> int:
    _paths()
    import fuzz_targets

    bad = 0
    for f in files:
        try:
            outcome = fuzz_targets.TARGETS[target](Path(f).read_bytes())
        except BaseException:  # noqa: BLE001 - that is the point
            bad += 1
            print(f"{f}: CRASH")
            traceback.print_exc()
        else:
            print(f"{f}: ok ({len(outcome.units)} access units; documented errors: {outcome.errors or 'none'})")
    return 1 if bad else 0


def main() -> int:
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        rest = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
        worker(sys.argv[i + 1], rest)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", choices=TARGETS, action="append", help="(repeatable) default: all")
    ap.add_argument("--seconds", type=int, default=60, help="per target")
    ap.add_argument("--timeout", type=int, default=10, help="seconds one input may take before it counts as a hang")
    ap.add_argument("--rss-mb", type=int, default=2048)
    ap.add_argument("--max-len", type=int, default=65536, help="largest input libFuzzer makes, bytes")
    ap.add_argument("--corpus", help="keep the grown corpus under DIR/<target>/ (default: a temporary folder)")
    ap.add_argument("--artifacts", default=str(REPO / "benchmarks" / "out" / "fuzz"), help="crash reproducers, logs")
    ap.add_argument("--reproduce", nargs="+", metavar="FILE", help="run the target once on each FILE")
    args = ap.parse_args()
    targets = args.target or list(TARGETS)
    if args.reproduce:
        return reproduce(targets[0], args.reproduce)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("atheris is not installed: .venv/bin/pip install -e '.[fuzz]'", file=sys.stderr)
        return 2
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}: nproc {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}")
    print("| target | seconds | executions | exec/s | atheris cov / ft | corpus | lines (rtsp.py+rtp.py) "
          "| branches | crashes |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    found = 0
    for t in targets:
        row = run_target(t, args.seconds, args)
        found += len(row["crashes"])  # type: ignore[arg-type]
        crashes = ", ".join(Path(c).name for c in row["crashes"]) or "none"  # type: ignore[union-attr]
        print(f"| {t} | {row['seconds']} | {row['execs']:,} | {row['execs_per_s']:,} | {row['cov']} / {row['ft']} "
              f"| {row['corpus']} | {row.get('lines', '?')} | {row.get('branches', '?')} | {crashes} |", flush=True)
        if row.get("traceback"):
            print(f"\n{t}: {row['traceback']}\n", file=sys.stderr)
        if row.get("coverage_error"):
            print(f"\n{t}: coverage replay failed: {row['coverage_error']}\n", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
