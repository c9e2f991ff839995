#!/usr/bin/env python3
"""The GPU half of tools/gpu-check.sh: runs the staged binaries on the GPU machine within one
device-tool call, in phases of decreasing value, each under its own time limit and all under a
total budget counted from this runner's own start, writing the report as it goes.

tools/gpu-check.sh stages this file as .gpu-stage/gpu_run.py beside the compressed binaries, and
tools/gpu-run.sh as .gpu-stage/run.sh; on the GPU machine (no Rust toolchain, no network) one call
of the device tool runs it from the repository root:

    command: bash .gpu-stage/run.sh     carry: [".gpu-stage"]     timeout_s: 480

Phases (see PHASES below and docs/gpu-check.md):
  1. preflight: unpack, find libcuda / NVRTC / cuBLASLt / compute-sanitizer, `recur info`, then one
     kernel test on the device; stops here, with the reason, if CUDA or NVRTC is unusable;
  2. every `::cuda` kernel test, the riskiest binaries first, RECUR_REQUIRE_CUDA=1 (a skip is a
     failure); then every test that failed or never reported is rerun alone;
  3. the device-resident step and graph tests (the `::cuda` tests of tests/resident_step.rs,
     graph_capture.rs, resident_optim.rs and train.rs, whichever exist);
  4. timings at matched shapes: `recur bench` (with its ours-vs-cuBLASLt rows), PyTorch SDPA,
     the copy and GEMM ceilings, `recur profile` eager and graph (when the subcommand exists);
  5. compute-sanitizer memcheck and racecheck with whatever time remains.

Everything lands in $OUT (at most 8 files come back; this writes 4): gpu-run-<date>.md (the
report, flushed after every line), tests.log, timings.log, sanitizer.log. A run killed part way
still leaves the report up to the step it was in, which names that step.

Modes:
  --plan      print the phases and their time limits and exit (no stage needed; CI checks it)
  --dry-run   on any machine: unpack and check every staged binary, list the tests each phase would
              run, print every command with its time limit; nothing runs on a GPU
Environment: TOTAL_BUDGET_S (480), OUT (default: <stage>/out).
"""
import datetime
import glob
import gzip
import lzma
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# (key, title, time limit in seconds). A phase ends at its limit or when the total budget is
# spent, whichever is first; time a phase leaves unused goes to the later ones. The sanitizer
# phase has no limit of its own: it takes what remains.
PHASES = [
    ("preflight", "preflight: CUDA, NVRTC and one kernel on the device", 45),
    ("kernels", "kernel tests on the device, riskiest first, failures rerun alone", 150),
    ("resident", "device-resident step and graph tests (resident_step, graph_capture, resident_optim, train)", 60),
    ("timings", "timings at matched shapes: recur bench + cuBLASLt, SDPA, ceilings, profile", 180),
    ("sanitizer", "compute-sanitizer memcheck then racecheck", None),
]
TOTAL_BUDGET_S = 480
# Kept back from the budget for the summary, so the report ends cleanly before the call's limit.
RESERVE_S = 8

# Step limits inside the phases (seconds).
PREFLIGHT_TEST_S = 40  # the first test compiles its kernels with NVRTC
BINARY_S = 60  # one test binary's `::cuda` tests, all together
RERUN_S = 30  # one test rerun alone
RERUNS_PER_BINARY = 6
RERUN_KEEP_S = 20  # of phases 2 and 3 (at most 15%), held back from the first runs for reruns
BENCH_S = 60  # recur bench prints its table only at the end: a cut-short run shows nothing
SDPA_S = 30
CEILINGS_S = 30
PROFILE_S = 35  # each of eager and graph
SANITIZER_STEP_S = 120

# Matched shapes: TRM Sudoku at the paper's global batch (768 x 97 tokens, hidden 512), the
# batch tools/sdpa_bench.py's trm_sudoku row and `recur profile` use.
BATCH = 768
BENCH_CMD = ["bench", "--device", "cuda", "--batch", str(BATCH), "--runs", "5", "--warmup", "2"]
PROFILE_CMD = [
    "profile", "--device", "cuda", "--preset", "trm-att-sudoku",
    "--set", f"train.global_batch_size={BATCH}",
]

# Phase 2's order: the binaries whose kernels are likeliest to break on real hardware first. The
# mma/ldmatrix fragment check comes before everything built on it (GEMM, attention); then GEMM
# (ours and cuBLASLt), attention and RoPE, norms (the fused recurrent step), losses. The rest
# follow in this order, then any binary not named here, alphabetically.
PRIORITY = [
    "kernels_mma", "kernels_gemm", "kernels_matmul", "gemm_choice", "kernels_attention",
    "kernels_rope", "kernels_fused_step", "kernels_loss", "kernels_activation", "kernels_noise",
    "kernels_reduce", "kernels_lattice", "kernels_optim", "kernels_embedding", "kernels_layout",
    "kernels_elementwise", "kernels_copy", "kernels_act", "dispatch", "dispatch_act",
]
# Phase 3's binaries (absent ones are noted, not failures).
RESIDENT_BINARIES = ["resident_step", "graph_capture", "resident_optim", "train"]
# The preflight's one kernel test: the simplest kernel, so a failure means CUDA or NVRTC.
PREFLIGHT_TEST = ("kernels_copy", "copy::cuda")
# Binaries the sanitizer sees first (shared memory, warp-level code).
SANITIZER_FIRST = ["kernels_mma", "kernels_gemm", "kernels_attention", "kernels_fused_step", "kernels_loss"]


def plan_lines(budget):
    lines = [f"total budget {budget} s from the runner's start ({RESERVE_S} s kept for the summary)"]
    for i, (key, title, limit) in enumerate(PHASES, 1):
        shown = f"{limit} s" if limit is not None else "the rest"
        lines.append(f"phase {i} {key:<10} limit {shown:>8}  {title}")
    return lines


class Stop(Exception):
    """Raised when the total budget is spent or the runner is told to stop."""


class Runner:
    def __init__(self, stage, out, budget, dry_run):
        self.start = time.monotonic()
        self.stage = stage
        self.out = out
        self.budget = budget
        self.dry_run = dry_run
        self.deadline = self.start + budget - RESERVE_S
        self.phase_deadline = self.deadline
        self.child = None
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        # Tests run from the repository root (the stage's parent), as under cargo.
        self.root = os.path.dirname(stage)
        self.sanitizer = None
        os.makedirs(out, exist_ok=True)
        day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        self.report_path = os.path.join(out, f"gpu-run-{day}.md")
        self.report = open(self.report_path, "w", encoding="utf-8")
        self.logs = {}
        for name in ("tests", "timings", "sanitizer"):
            self.logs[name] = open(os.path.join(out, f"{name}.log"), "w", encoding="utf-8")
        self.work = tempfile.mkdtemp(prefix="recur-gpu-run-")
        self.bin = {}  # staged name -> unpacked executable
        self.cuda_tests = {}  # test binary -> its `::cuda` test names
        self.failures = []  # (binary, test, first panic line) that failed alone too
        self.phase_results = []  # (phase, outcome) for the summary

    # --- output ------------------------------------------------------------------------------
    def t(self):
        return int(time.monotonic() - self.start)

    def note(self, line=""):
        self.report.write(line + "\n")
        self.report.flush()

    def say(self, line):
        """A progress line: to stdout (the device tool's output tail) and nowhere else."""
        emit(f"[t+{self.t():3d}s] {line}")

    def left(self, keep=0):
        """Seconds until the phase (or the whole budget) ends, less `keep` held back."""
        return min(self.deadline, self.phase_deadline) - time.monotonic() - keep

    # --- running -----------------------------------------------------------------------------
    def run(self, cmd, limit, log, env=None, keep=0):
        """Runs cmd (a list) with its output appended to log, under min(limit, time left - keep).
        Returns (status, seconds, output); status 124 on timeout, None in dry-run mode."""
        limit = int(min(limit, self.left(keep)))
        shown = self.pretty(cmd)
        if self.dry_run:
            emit(f"  would run (limit {limit:3d} s): {shown}")
            return None, 0.0, ""
        if limit < 3:
            raise Stop(f"no time left for: {shown}")
        logf = self.logs[log]
        logf.write(f"\n+ [t+{self.t()}s, limit {limit}s] {shown}\n")
        logf.flush()
        before = logf.tell()
        started = time.monotonic()
        try:
            self.child = subprocess.Popen(
                cmd, stdout=logf, stderr=subprocess.STDOUT, env=env or self.env,
                cwd=self.root, start_new_session=True)
        except OSError as e:
            logf.write(f"cannot start: {e}\n")
            return 127, 0.0, f"cannot start: {e}"
        try:
            status = self.child.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.kill_child()
            status = 124
        finally:
            self.child = None
        seconds = time.monotonic() - started
        logf.flush()
        with open(logf.name, encoding="utf-8", errors="replace") as f:
            f.seek(before)
            output = f.read()
        logf.write(f"+ exit status {status} after {seconds:.1f}s\n")
        logf.flush()
        self.say(f"{shown[:100]}: exit {status}, {seconds:.1f}s")
        return status, seconds, output

    def pretty(self, cmd):
        """cmd as the report shows it: staged binaries by their staged names."""
        return " ".join(cmd).replace(self.work + "/test-", "").replace(self.work + "/", "")

    def kill_child(self):
        child = self.child
        if child is None or child.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                return
            try:
                child.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    # --- phases ------------------------------------------------------------------------------
    def phase(self, index, key, title, limit, body):
        now = time.monotonic()
        self.phase_deadline = self.deadline if limit is None else min(self.deadline, now + limit)
        shown = f"limit {limit} s" if limit is not None else "the time left"
        self.note("")
        self.note(f"## {index}. {title}")
        self.note("")
        self.note(f"_started at t+{self.t()} s, {shown}, {int(self.deadline - now)} s left in the budget_")
        self.note("")
        self.say(f"phase {index} {key} ({shown}): {title}")
        try:
            outcome = body()
        except Stop as e:
            outcome = f"stopped: {e}"
            self.note(f"- **stopped**: {e}")
        self.phase_results.append((f"{index}. {key}", outcome or "done", self.t()))
        return outcome

    def unpack(self):
        """The staged binaries are compressed, xz or gzip (to fit the 64 MiB the device tool
        carries); they are unpacked outside the stage, so a dry run here leaves the stage as
        small as it was."""
        openers = {".xz": lzma.open, ".gz": gzip.open}
        packed_files = []
        for suffix in openers:
            packed_files += glob.glob(os.path.join(self.stage, "recur" + suffix))
            packed_files += glob.glob(os.path.join(self.stage, "tests", "*" + suffix))
        for packed in sorted(packed_files):
            base, suffix = os.path.splitext(packed)
            name = os.path.basename(base)
            name = "recur" if os.path.dirname(packed) == self.stage else name
            target = os.path.join(self.work, "recur" if name == "recur" else f"test-{name}")
            with openers[suffix](packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.chmod(target, 0o755)
            self.bin[name] = target

    def list_cuda_tests(self, name):
        try:
            listing = subprocess.run([self.bin[name], "--list"], capture_output=True, text=True,
                                     timeout=20, cwd=self.root).stdout
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, str(e)
        return [line[: -len(": test")] for line in listing.splitlines()
                if line.endswith("::cuda: test")], None

    def preflight(self):
        started = time.monotonic()
        self.unpack()
        tests = sorted(n for n in self.bin if n != "recur")
        self.note(f"- unpacked recur and {len(tests)} test binaries in {time.monotonic() - started:.1f} s")
        if "recur" not in self.bin:
            raise Stop("recur is not staged")
        try:
            subprocess.run([self.bin["recur"], "--help"], capture_output=True, timeout=20, check=True)
        except (OSError, subprocess.SubprocessError) as e:
            raise Stop(f"the staged recur does not run here: {e}") from e
        for name in tests:
            found, err = self.list_cuda_tests(name)
            if found is None:
                raise Stop(f"test binary {name} does not run here: {err}")
            self.cuda_tests[name] = found
            if self.dry_run:
                emit(f"  {name}: {len(found)} cuda tests")
        self.find_libraries()
        self.env["RECUR_PTX_CACHE"] = os.path.join(self.work, "ptx-cache")
        self.env["RECUR_REQUIRE_CUDA"] = "1"
        status, _, output = self.run([self.bin["recur"], "info"], 15, "tests")
        if not self.dry_run:
            self.note("```")
            self.note(output.strip() or f"(recur info printed nothing; exit status {status})")
            self.note("```")
        binary, test = PREFLIGHT_TEST
        if binary not in self.cuda_tests or test not in self.cuda_tests[binary]:
            binary = next((b for b in PRIORITY + tests if self.cuda_tests.get(b)), None)
            if binary is None:
                raise Stop("no staged binary holds a ::cuda test")
            test = self.cuda_tests[binary][0]
        status, seconds, output = self.run(
            [self.bin[binary], "--exact", test, "--nocapture", "--test-threads=1"],
            PREFLIGHT_TEST_S, "tests")
        if self.dry_run:
            return "dry run"
        if status != 0:
            reason = first_panic(output) or last_lines(output, 6)
            self.note(f"- `{binary} {test}` with RECUR_REQUIRE_CUDA=1: **exit status {status}**")
            self.note("")
            self.note("**STOPPED: CUDA or NVRTC is unusable here**; nothing else can run. The reason:")
            self.note("```")
            self.note(reason)
            self.note("```")
            return "FAILED: " + reason.splitlines()[0][:200] if reason else "FAILED"
        self.note(f"- `{binary} {test}` on the device: ok in {seconds:.1f} s (kernels compiled by NVRTC)")
        return "ok"

    def find_libraries(self):
        libcuda = find_libcuda(self.env)
        self.note(f"- libcuda: {libcuda or 'NOT FOUND'}")
        nvrtc = find_lib_dir(self.env.get("RECUR_NVRTC_DIR"), ("cu13/lib", "cuda_nvrtc/lib"),
                             ("libnvrtc.so.13", "libnvrtc-builtins.so.13.0"))
        if nvrtc:
            self.env["RECUR_NVRTC_DIR"] = nvrtc
        self.note(f"- NVRTC: {nvrtc or 'NOT FOUND'}")
        cublaslt = find_lib_dir(self.env.get("RECUR_CUBLASLT_DIR"), ("cu13/lib", "cublas/lib"),
                                ("libcublasLt.so.13",))
        if cublaslt:
            self.env["RECUR_CUBLASLT_DIR"] = cublaslt
        self.note(f"- cuBLASLt: {cublaslt or 'NOT FOUND (its tests fail under RECUR_REQUIRE_CUDA=1)'}")
        self.sanitizer = shutil.which("compute-sanitizer") or next(
            (p for p in ("/usr/local/cuda/bin/compute-sanitizer",
                         "/usr/local/cuda/compute-sanitizer/compute-sanitizer") if os.access(p, os.X_OK)),
            None)
        self.note(f"- compute-sanitizer: {self.sanitizer or 'not found'}")
        if self.dry_run and not self.sanitizer:
            self.sanitizer = "compute-sanitizer"

    def test_binaries(self, names, log_title):
        """Runs each binary's `::cuda` tests, then reruns alone every test that failed or never
        reported (a crash or a sticky CUDA fault takes the rest of its process down)."""
        self.note("")
        self.note(f"| binary | {log_title} | passed | failed | skipped | seconds |")
        self.note("| --- | --- | --- | --- | --- | --- |")
        to_rerun = []
        not_run = 0
        # Some of the phase is held back for the reruns.
        keep = min(RERUN_KEEP_S, 0.15 * self.left())
        for name in names:
            tests = self.cuda_tests.get(name, [])
            if not tests:
                continue
            if not self.dry_run and self.left(keep) < 5:
                self.note(f"| {name} | not run (phase time spent) | | | | |")
                not_run += 1
                continue
            status, seconds, output = self.run(
                [self.bin[name], "--exact", *tests, "--nocapture"], BINARY_S, "tests", keep=keep)
            if self.dry_run:
                continue
            results = test_results(output)
            passed = [t for t in tests if results.get(t) == "ok"]
            failed = [t for t in tests if results.get(t) == "FAILED"]
            missing = [t for t in tests if t not in results]
            skipped = output.count("skipping ")
            verdict = {0: "ok", 124: "TIMED OUT"}.get(status, f"exit status {status}")
            extra = f", {len(missing)} never reported" if missing else ""
            self.note(f"| {name} | {verdict}{extra} | {len(passed)} | {len(failed)} | {skipped} | {seconds:.1f} |")
            for t in failed + missing:
                first = "failed" if t in failed else ("no result (timed out)" if status == 124 else "no result")
                to_rerun.append((name, t, first, first_panic(output, t)))
        unrun = f", {not_run} binaries not run (time)" if not_run else ""
        if not to_rerun or self.dry_run:
            return "dry run" if self.dry_run else "all passed" + unrun
        self.note("")
        self.note("Rerun alone (a failure that passes alone was caused by another test in its process):")
        self.note("")
        self.note("| binary | test | first run | alone | reason |")
        self.note("| --- | --- | --- | --- | --- |")
        per_binary = {}
        real = 0
        for name, test, first, first_reason in to_rerun:
            per_binary[name] = per_binary.get(name, 0) + 1
            if per_binary[name] > RERUNS_PER_BINARY:
                self.note(f"| {name} | {test} | {first} | not rerun (over {RERUNS_PER_BINARY} in this binary) | {cell(first_reason)} |")
                real += 1
                continue
            if self.left() < 5:
                self.note(f"| {name} | {test} | {first} | not rerun (phase time spent) | {cell(first_reason)} |")
                real += 1
                continue
            status, seconds, output = self.run(
                [self.bin[name], "--exact", test, "--nocapture", "--test-threads=1"], RERUN_S,
                "tests")
            alone = {0: "passed", 124: "TIMED OUT"}.get(status, "FAILED")
            reason = first_panic(output, test) or first_reason
            if status != 0:
                real += 1
                self.failures.append((name, test, reason))
            self.note(f"| {name} | {test} | {first} | {alone} ({seconds:.1f} s) | {cell(reason if status else first_reason)} |")
        return (f"{real} failing" if real else "failures passed alone") + unrun

    def kernels(self):
        names = [b for b in ordered(self.cuda_tests) if b not in RESIDENT_BINARIES]
        return self.test_binaries(names, "result")

    def resident(self):
        present = [b for b in RESIDENT_BINARIES if self.cuda_tests.get(b)]
        for b in RESIDENT_BINARIES:
            if b not in present:
                why = "not staged (no such test binary, or no ::cuda test in it)"
                self.note(f"- {b}: {why}")
                if self.dry_run:
                    emit(f"  {b}: {why}")
        if not present:
            return "no resident or graph tests yet"
        return self.test_binaries(present, "result")

    def timings(self):
        recur = self.bin["recur"]
        steps = []
        status, _, output = self.run([recur, *BENCH_CMD], BENCH_S, "timings")
        steps.append(("recur " + " ".join(BENCH_CMD) + " (kernel roofline + ours-vs-cuBLASLt rows)", status, output))
        self.block(*steps[-1])
        for script, limit, args in (("sdpa_bench.py", SDPA_S, ["--runs", "10"]),
                                    ("ceilings.py", CEILINGS_S, ["--runs", "10"])):
            path = os.path.join(self.stage, script)
            if not os.path.exists(path):
                self.note(f"- {script}: not staged")
                continue
            status, _, output = self.run([sys.executable, "-u", path, *args], limit, "timings")
            steps.append((f"python3 {script} {' '.join(args)}", status, output))
            self.block(*steps[-1])
        has_profile = subprocess.run([recur, "profile", "--help"], capture_output=True, text=True,
                                     timeout=10, cwd=self.root)
        if has_profile.returncode != 0:
            line = "recur profile: absent in this build (`recur profile --help` failed); not run"
            self.note(f"- {line}")
            if self.dry_run:
                emit(f"  {line}")
        else:
            modes = [("eager", ["--graph", "off"]), ("graph", ["--graph", "on"])]
            limit = PROFILE_S
            if "--graph" not in has_profile.stdout:
                self.note("- recur profile has no --graph flag: eager only")
                modes = [("eager", [])]
                # The graph run's time goes to the eager one: its first step compiles every
                # kernel it launches with NVRTC.
                limit = 2 * PROFILE_S
            for mode, flags in modes:
                cmd = [recur, *PROFILE_CMD, *flags]
                status, _, output = self.run(cmd, limit, "timings")
                steps.append((f"recur profile ({mode}): {' '.join(cmd[1:])}", status, output))
                self.block(*steps[-1])
        if self.dry_run:
            return "dry run"
        bad = [s for s in steps if s[1] != 0]
        return f"{len(steps) - len(bad)} of {len(steps)} ran" if bad else "all ran"

    def block(self, title, status, output):
        if self.dry_run:
            return
        verdict = {0: "", 124: " — **TIMED OUT**"}.get(status, f" — **exit status {status}**")
        self.note(f"### {title}{verdict}")
        self.note("")
        self.note("```")
        self.note(last_lines(output, 80))
        self.note("```")
        self.note("")

    def sanitizer_phase(self):
        if not self.sanitizer:
            self.note("compute-sanitizer not found; skipped.")
            return "not found"
        names = [b for b in ordered(self.cuda_tests) if self.cuda_tests.get(b)]
        first = [b for b in SANITIZER_FIRST if b in names]
        rest = [b for b in names if b not in first]
        order = ([("memcheck", b) for b in first] + [("racecheck", b) for b in first]
                 + [("memcheck", b) for b in rest] + [("racecheck", b) for b in rest])
        env = dict(self.env, RECUR_CUDA_ALLOCATOR="exact")
        self.note("Exact-size allocations (RECUR_CUDA_ALLOCATOR=exact), so out-of-bounds and "
                  "use-after-free accesses are visible.")
        self.note("")
        self.note("| binary | tool | result | seconds |")
        self.note("| --- | --- | --- | --- |")
        done = errors = 0
        for tool, name in order:
            if not self.dry_run and self.left() < 15:
                self.note(f"| {name} | {tool} | not run (budget spent) | |")
                continue
            status, seconds, output = self.run(
                [self.sanitizer, "--tool", tool, "--error-exitcode", "99", "--print-limit", "20",
                 self.bin[name], "--exact", *self.cuda_tests[name], "--test-threads=1"],
                SANITIZER_STEP_S, "sanitizer", env=env)
            if self.dry_run:
                continue
            done += 1
            result = {0: "clean", 99: "**ERRORS** (sanitizer.log)", 124: "timed out"}.get(
                status, f"exit status {status} (sanitizer.log)")
            errors += status == 99
            self.note(f"| {name} | {tool} | {result} | {seconds:.1f} |")
        if self.dry_run:
            return "dry run"
        return f"{done} of {len(order)} runs, {errors} with errors"

    # --- the whole run -----------------------------------------------------------------------
    def header(self):
        self.note(f"# GPU run {os.path.basename(self.report_path)[8:-3]}")
        self.note("")
        self.note("Written by tools/gpu-check.sh's runner (.gpu-stage/run.sh → gpu_run.py)"
                  + (", DRY RUN (nothing ran on a GPU)." if self.dry_run else "."))
        self.note("")
        self.note("```")
        try:
            with open(os.path.join(self.stage, "manifest.txt"), encoding="utf-8") as f:
                self.note(f.read().rstrip())
        except OSError:
            self.note(f"(no manifest.txt in {self.stage})")
        smi = shutil.which("nvidia-smi")
        if smi:
            try:
                out = subprocess.run(
                    [smi, "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv"],
                    capture_output=True, text=True, timeout=10).stdout
                self.note(out.rstrip())
            except (OSError, subprocess.TimeoutExpired) as e:
                self.note(f"nvidia-smi: {e}")
        else:
            self.note("nvidia-smi: not found")
        self.note("```")
        self.note("")
        self.note("Plan:")
        self.note("")
        for line in plan_lines(self.budget):
            self.note(f"    {line}")

    def main(self):
        self.header()
        bodies = {"preflight": self.preflight, "kernels": self.kernels, "resident": self.resident,
                  "timings": self.timings, "sanitizer": self.sanitizer_phase}
        for index, (key, title, limit) in enumerate(PHASES, 1):
            if time.monotonic() >= self.deadline:
                self.note("")
                self.note(f"## {index}. {title}")
                self.note("")
                self.note("not run: total budget spent")
                self.phase_results.append((f"{index}. {key}", "not run (budget spent)", self.t()))
                continue
            outcome = self.phase(index, key, title, limit, bodies[key])
            if key == "preflight" and outcome not in ("ok", "dry run"):
                break
        self.summary()
        preflight_failed = self.phase_results[0][1] not in ("ok", "dry run")
        return 1 if preflight_failed or self.failures else 0

    def summary(self):
        self.note("")
        self.note("## Summary")
        self.note("")
        self.note("| phase | outcome | ended at |")
        self.note("| --- | --- | --- |")
        for phase, outcome, at in self.phase_results:
            self.note(f"| {phase} | {cell(outcome)} | t+{at} s |")
        if self.failures:
            self.note("")
            self.note("Tests that failed alone:")
            self.note("")
            for name, test, reason in self.failures:
                self.note(f"- `{name} {test}`: {cell(reason)}")
        self.note("")
        self.note(f"Total runner time: {self.t()} s of the {self.budget} s budget. Logs beside this "
                  "report: tests.log, timings.log, sanitizer.log.")
        self.say(f"report: {self.report_path}")

    def interrupted(self, signum, _frame):
        """SIGTERM/SIGINT (the device tool's limit) or SIGALRM (the budget): stop the child and
        leave a report that says where the run was."""
        self.kill_child()
        what = "the total budget ran out" if signum == signal.SIGALRM else f"signal {signum}"
        self.note("")
        self.note(f"**Run cut short at t+{self.t()} s by {what}.** The last section above is where it was.")
        self.summary()
        sys.exit(124 if signum == signal.SIGALRM else 128 + signum)


# --- helpers --------------------------------------------------------------------------------
def emit(line):
    """Prints a progress line; a closed stdout (`| head`) must not stop the run or its report."""
    try:
        print(line, flush=True)
    except OSError:
        pass


def ordered(names):
    known = [b for b in PRIORITY if b in names]
    return known + sorted(b for b in names if b not in PRIORITY)


TEST_LINE = re.compile(r"test (\S+) \.\.\. (ok|FAILED|ignored)")


def test_results(output):
    """{test name: ok | FAILED | ignored} from libtest's lines (searched anywhere in a line: with
    --nocapture a test's own output can share the line)."""
    results = {}
    for m in TEST_LINE.finditer(output):
        results[m.group(1)] = m.group(2)
    return results


def first_panic(output, test=None):
    """The first panic message (in `test`'s thread if named), on one line."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line and (test is None or f"'{test}'" in line):
            msg = []
            for following in lines[i + 1:i + 4]:
                if not following.strip() or TEST_LINE.search(following) or following.startswith(
                        ("note:", "stack backtrace", "----", "thread '")):
                    break
                msg.append(following.strip())
            return " ".join([line.strip(), *msg])
    return ""


def last_lines(text, n):
    lines = text.rstrip().splitlines()
    return "\n".join(lines[-n:]) if lines else "(no output)"


def cell(text):
    return (text or "").replace("|", "\\|").replace("\n", " ")[:300]


def find_libcuda(env):
    try:
        cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        cache = ""
    if "libcuda.so.1 " in cache:
        return "ldconfig cache"
    for d in ("/usr/local/nvidia/lib64", "/usr/local/nvidia/lib", "/usr/lib/x86_64-linux-gnu",
              "/usr/lib64", "/usr/local/cuda/compat", "/usr/local/cuda/lib64"):
        if os.path.exists(os.path.join(d, "libcuda.so.1")):
            env["LD_LIBRARY_PATH"] = d + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
            return d
    return None


def find_lib_dir(preset, wheel_subdirs, files):
    """The first folder holding every one of files: preset, PyTorch's nvidia wheels, CUDA."""
    candidates = [preset] if preset else []
    try:
        import nvidia  # PyTorch's CUDA 13 wheels: site-packages/nvidia/cu13/lib
        for p in nvidia.__path__:
            candidates += [os.path.join(p, s) for s in wheel_subdirs]
    except ImportError:
        pass
    candidates += ["/usr/local/cuda/lib64", "/usr/local/cuda-13.0/lib64",
                   "/usr/local/cuda/targets/x86_64-linux/lib"]
    for d in candidates:
        if all(os.path.exists(os.path.join(d, f)) for f in files):
            return d
    return None


def main(argv):
    mode = argv[1] if len(argv) > 1 else ""
    if mode not in ("", "--plan", "--dry-run") or len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    budget = int(os.environ.get("TOTAL_BUDGET_S", TOTAL_BUDGET_S))
    if mode == "--plan":
        print("\n".join(plan_lines(budget)))
        return 0
    stage = os.path.dirname(os.path.abspath(__file__))
    runner = Runner(stage, os.environ.get("OUT") or os.path.join(stage, "out"), budget,
                    mode == "--dry-run")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, runner.interrupted)
    # The budget's last word: even a step stuck outside a child's timeout ends in time.
    signal.alarm(max(1, budget - RESERVE_S // 2))
    try:
        return runner.main()
    finally:
        signal.alarm(0)
        shutil.rmtree(runner.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
