#!/usr/bin/env python3
"""Checks of the GPU runner (tools/gpu_run.py) that need neither a GPU nor a Rust build, run by
tools/test.sh in a few seconds: the phase order and time limits, and whole runs over a fake stage
whose "binaries" are shell scripts speaking libtest's protocol (a passing kernel test, a test that
fails beside another but passes alone, a crash that leaves a test unreported, a test that hangs
past the budget).

    python3 tools/test_gpu_run.py
"""
import gzip
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
ORDER = ["preflight", "kernels", "resident", "timings", "sanitizer"]

# A fake test binary: `--list` prints its tests; a run prints libtest lines. $1 of the case
# statement is the behaviour, chosen per file below.
FAKE_TEST = r"""#!/usr/bin/env bash
tests=(%(tests)s)
if [[ $1 == --list ]]; then
    for t in "${tests[@]}"; do echo "$t: test"; done
    echo "not_a_twin: test"
    exit 0
fi
[[ $RECUR_REQUIRE_CUDA == 1 ]] || { echo "RECUR_REQUIRE_CUDA is not 1"; exit 3; }
shift  # --exact
wanted=()
for a in "$@"; do [[ $a == -* ]] || wanted+=("$a"); done
%(body)s
"""

BODIES = {
    # every test passes
    "pass": """for t in "${wanted[@]}"; do echo "test $t ... ok"; done; exit 0""",
    # b::cuda fails when run with a::cuda (a sticky fault), passes alone
    "sticky": """if ((${#wanted[@]} > 1)); then
    echo "test a::cuda ... ok"
    echo "thread 'b::cuda' panicked at tests/x.rs:1:1:"
    echo "CUDA_ERROR_ILLEGAL_ADDRESS left by a::cuda"
    echo "test b::cuda ... FAILED"
    exit 101
fi
echo "test ${wanted[0]} ... ok"; exit 0""",
    # the process dies before c::cuda reports; c::cuda fails alone too
    "crash": """echo "thread 'c::cuda' panicked at tests/y.rs:2:2:"
echo "attention output differs: rel L2 0.5"
exit 101""",
    # hangs
    "hang": """sleep 100""",
}

FAKE_RECUR = r"""#!/usr/bin/env bash
case $1 in
    --help) echo "usage: recur"; exit 0 ;;
    info) echo "backends: fake"; exit 0 ;;
    bench) echo "| kernel | ms |"; echo "| fake | 1.0 |"; exit 0 ;;
    profile) exit 2 ;;
esac
exit 1
"""


def make_stage(root, binaries):
    """A repository root holding .gpu-stage/ with the runner and fake binaries, compressed as
    gpu-check.sh does: xz, except the first test binary in gzip (its fallback), so the runner's
    unpacking of both is exercised."""
    stage = os.path.join(root, ".gpu-stage")
    os.makedirs(os.path.join(stage, "tests"))
    shutil.copy(os.path.join(TOOLS, "gpu_run.py"), stage)
    shutil.copy(os.path.join(TOOLS, "gpu-run.sh"), os.path.join(stage, "run.sh"))

    def pack(path, text, use_gzip=False):
        opener, suffix = (gzip.open, ".gz") if use_gzip else (lzma.open, ".xz")
        with opener(path + suffix, "wt") as f:
            f.write(text)

    pack(os.path.join(stage, "recur"), FAKE_RECUR)
    for i, (name, (tests, body)) in enumerate(binaries.items()):
        text = FAKE_TEST % {"tests": " ".join(tests), "body": BODIES[body]}
        pack(os.path.join(stage, "tests", name), text, use_gzip=i == 0)
    return stage


def run_stage(stage, out, budget=None, args=()):
    env = dict(os.environ, OUT=out)
    env.pop("RECUR_REQUIRE_CUDA", None)
    if budget:
        env["TOTAL_BUDGET_S"] = str(budget)
    started = time.monotonic()
    proc = subprocess.run(["bash", os.path.join(stage, "run.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    reports = [f for f in os.listdir(out) if f.startswith("gpu-run-") and f.endswith(".md")]
    report = ""
    if reports:
        with open(os.path.join(out, reports[0]), encoding="utf-8") as f:
            report = f.read()
    return proc, report, elapsed


class Plan(unittest.TestCase):
    def test_phases_in_order_within_the_budget(self):
        out = subprocess.run([sys.executable, os.path.join(TOOLS, "gpu_run.py"), "--plan"],
                             capture_output=True, text=True, check=True).stdout
        phases = re.findall(r"^phase (\d) (\w+) +limit +(\d+ s|the rest)", out, re.M)
        self.assertEqual([p[1] for p in phases], ORDER, out)
        self.assertEqual([int(p[0]) for p in phases], [1, 2, 3, 4, 5], out)
        budget = int(re.search(r"total budget (\d+) s", out).group(1))
        self.assertEqual(budget, 480, "one device-tool call of at most 8 minutes")
        limits = [int(p[2].split()[0]) for p in phases[:-1]]
        self.assertEqual(phases[-1][2], "the rest", "the sanitizer takes what remains")
        self.assertLessEqual(sum(limits) + 30, budget, "at least 30 s are left for the sanitizer")

    def test_scripts_parse(self):
        for script in ("gpu-check.sh", "gpu-run.sh"):
            subprocess.run(["bash", "-n", os.path.join(TOOLS, script)], check=True)


class FakeStage(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="test-gpu-run-")
        self.out = os.path.join(self.root, "out")
        os.makedirs(self.out)

    def tearDown(self):
        shutil.rmtree(self.root, ignore_errors=True)

    def test_phases_reruns_and_report(self):
        stage = make_stage(self.root, {
            "kernels_copy": (["copy::cuda"], "pass"),
            "kernels_gemm": (["a::cuda", "b::cuda"], "sticky"),
            "kernels_attention": (["c::cuda"], "crash"),
            "kernels_zeta": (["z::cuda"], "pass"),
            "train": (["training_step_matches_cpu::cuda"], "pass"),
        })
        before = sorted(os.listdir(os.path.join(stage, "tests")))
        proc, report, _ = run_stage(stage, self.out)
        self.assertEqual(proc.returncode, 1, "a test failed alone: " + proc.stdout + proc.stderr)
        sections = re.findall(r"^## (\d)\. ", report, re.M)
        self.assertEqual(sections, ["1", "2", "3", "4", "5"], report)
        kernels = report.split("## 2. ")[1].split("## 3. ")[0]
        # riskiest first: GEMM before attention before the rest, then unknown binaries
        rows = re.findall(r"^\| (kernels_\w+) \| ", kernels, re.M)
        self.assertEqual(rows[:4], ["kernels_gemm", "kernels_attention", "kernels_copy", "kernels_zeta"], kernels)
        self.assertRegex(kernels, r"\| kernels_gemm \| b::cuda \| failed \| passed")
        self.assertRegex(kernels, r"\| kernels_attention \| c::cuda \| no result \| FAILED .*rel L2 0.5")
        self.assertNotIn("training_step", kernels, "train runs in phase 3")
        resident = report.split("## 3. ")[1].split("## 4. ")[0]
        self.assertIn("| train | ok |", resident)
        self.assertIn("resident_step: not staged", resident)
        timings = report.split("## 4. ")[1].split("## 5. ")[0]
        self.assertIn("| fake | 1.0 |", timings)
        self.assertIn("recur profile: absent", timings)
        self.assertIn("compute-sanitizer not found", report.split("## 5. ")[1])
        self.assertIn("`kernels_attention c::cuda`", report.split("## Summary")[1])
        self.assertLessEqual(len(os.listdir(self.out)), 8, "the device tool brings back 8 files")
        self.assertEqual(sorted(os.listdir(os.path.join(stage, "tests"))), before,
                         "the stage is left as it was (still compressed)")

    def test_preflight_failure_stops_with_the_reason(self):
        stage = make_stage(self.root, {"kernels_copy": (["copy::cuda"], "crash")})
        proc, report, _ = run_stage(stage, self.out)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("STOPPED: CUDA or NVRTC is unusable", report)
        self.assertIn("attention output differs", report)
        self.assertNotIn("## 2. ", report)

    def test_budget_ends_a_hanging_run_with_a_report(self):
        stage = make_stage(self.root, {
            "kernels_copy": (["copy::cuda"], "pass"),
            "kernels_gemm": (["a::cuda"], "hang"),
        })
        proc, report, elapsed = run_stage(stage, self.out, budget=14)
        self.assertLess(elapsed, 14, proc.stdout)
        self.assertIn("| kernels_gemm | TIMED OUT", report)
        self.assertIn("## Summary", report)

    def test_dry_run_runs_nothing(self):
        stage = make_stage(self.root, {"kernels_copy": (["copy::cuda"], "hang")})
        proc, report, elapsed = run_stage(stage, self.out, args=["--dry-run"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertLess(elapsed, 10)
        self.assertIn("kernels_copy: 1 cuda tests", proc.stdout)
        self.assertRegex(proc.stdout, r"would run \(limit +\d+ s\): .*kernels_copy --exact copy::cuda")
        order = re.findall(r"\] phase \d (\w+) ", proc.stdout)
        self.assertEqual(order, ORDER, proc.stdout)


if __name__ == "__main__":
    unittest.main()
