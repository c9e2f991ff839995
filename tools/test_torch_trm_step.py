#!/usr/bin/env python3
"""Checks of tools/torch_trm_step.py that need neither PyTorch nor the official checkout nor a Rust
build, run by tools/test.sh in about a second: argument checks, the error messages, parsing
`recur bench step --json`, the recur subprocess (a fake recur script) and the ratio table. The
official timing itself is stubbed; it is exercised by running the script (docs/cpu-speed.md).

    python3 tools/test_torch_trm_step.py
"""
import contextlib
import io
import json
import os
import stat
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_trm_step as tts  # noqa: E402

# A fake `recur`: checks its arguments and environment as torch_trm_step passes them, then prints
# a log line and bench step's JSON with median_s = batch / 10.
FAKE_RECUR = r"""#!/usr/bin/env bash
[[ "$1 $2" == "bench step" ]] || { echo "unexpected: $*" >&2; exit 9; }
[[ $RAYON_NUM_THREADS == 3 ]] || { echo "RAYON_NUM_THREADS=$RAYON_NUM_THREADS" >&2; exit 8; }
args=" $* "
[[ $args == *" --preset trm-att-sudoku "* && $args == *" --device cpu "* && $args == *" --json "* \
   && $args == *" --set forward_dtype=float32 "* && $args == *" --threads 3 "* ]] || { echo "bad args: $*" >&2; exit 7; }
batch=0
while (($#)); do [[ $1 == --batch ]] && batch=$2; shift; done
echo "warming up"
printf '{"median_s": %s, "samples_per_s": 1.0, "gflops": 2.0, "batch": %s, "threads": 3}\n' \
    "$(awk "BEGIN{print $batch/10}")" "$batch"
"""


def fake_official(repo, batch, threads, warmup, steps, seed):
    return {
        "batch": batch,
        "fwd_bwd_s": batch / 4,
        "step_s": batch / 2,
        "fwd_bwd_samples_s": [batch / 4],
        "step_samples_s": [batch / 2],
        "optimizer": "fake",
        "parameters": 6828034,
        "torch": "0.0-fake",
        "other_cores": 0.25,
    }


class Completed:
    def __init__(self, returncode, stdout="", stderr=""):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class TorchTrmStepTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.repo = os.path.join(self.tmp.name, "trm")
        for f in tts.OFFICIAL_FILES:
            os.makedirs(os.path.dirname(os.path.join(self.repo, f)), exist_ok=True)
            open(os.path.join(self.repo, f), "w").close()
        self.recur = os.path.join(self.tmp.name, "recur")
        with open(self.recur, "w") as fh:
            fh.write(FAKE_RECUR)
        os.chmod(self.recur, os.stat(self.recur).st_mode | stat.S_IXUSR)

    def run_main(self, argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = tts.main(argv)
        return rc, out.getvalue(), err.getvalue()

    # --- arguments and checks

    def test_defaults_and_several_batches(self):
        a = tts.parse_args(["--trm-repo", "x"])
        self.assertEqual((a.batch, a.threads, a.warmup, a.steps, a.no_recur), ([8], 2, 2, 5, False))
        self.assertEqual(a.recur, "target/release/recur")
        self.assertEqual(tts.parse_args(["--trm-repo", "x", "--batch", "8", "32"]).batch, [8, 32])

    def test_bad_arguments_are_refused(self):
        for argv in ([], ["--trm-repo", "x", "--steps", "0"], ["--trm-repo", "x", "--threads", "0"],
                     ["--trm-repo", "x", "--warmup", "-1"], ["--trm-repo", "x", "--batch", "0"]):
            with self.subTest(argv=argv), self.assertRaises(SystemExit), \
                    contextlib.redirect_stderr(io.StringIO()):
                tts.parse_args(argv)

    def test_repo_checks(self):
        with self.assertRaisesRegex(tts.ToolError, "no such directory"):
            tts.check_trm_repo(os.path.join(self.tmp.name, "absent"))
        os.remove(os.path.join(self.repo, "models/losses.py"))
        with self.assertRaisesRegex(tts.ToolError, "not a TinyRecursiveModels checkout: missing models/losses.py"):
            tts.check_trm_repo(self.repo)

    def test_missing_recur_says_how_to_build(self):
        with self.assertRaisesRegex(tts.ToolError, "cargo build --release"):
            tts.check_recur(os.path.join(self.tmp.name, "no-recur"))
        self.assertEqual(tts.check_recur(self.recur), self.recur)

    def test_missing_torch_says_the_pip_command(self):
        with mock.patch.dict(sys.modules, {"torch": None}):
            with self.assertRaisesRegex(tts.ToolError, "pip install torch"):
                tts.import_torch()
            rc, out, err = self.run_main(["--trm-repo", self.repo, "--no-recur"])
        self.assertEqual((rc, out), (2, ""))
        self.assertIn("pip install torch", err)

    def test_missing_recur_is_reported_before_timing(self):
        with mock.patch.object(tts, "time_official", side_effect=AssertionError("timed")):
            rc, _, err = self.run_main(["--trm-repo", self.repo, "--recur", "/nonexistent/recur"])
        self.assertEqual(rc, 2)
        self.assertIn("cargo build --release", err)

    # --- recur's JSON

    def test_parse_one_object_with_log_lines(self):
        text = 'compiling\n{"median_s": 3.24, "samples_per_s": 2.5, "gflops": 110.0, "batch": 8, "threads": 2}\n'
        self.assertEqual(tts.parse_recur_json(text, 8)["median_s"], 3.24)
        self.assertEqual(tts.parse_recur_json(json.dumps({"median_s": 1.5}), 32)["median_s"], 1.5)

    def test_parse_picks_the_batch(self):
        text = json.dumps([{"median_s": 1.0, "batch": 8}, {"median_s": 4.0, "batch": 32}])
        self.assertEqual(tts.parse_recur_json(text, 32)["median_s"], 4.0)
        with self.assertRaisesRegex(tts.ToolError, "batch 16"):
            tts.parse_recur_json(text, 16)

    def test_parse_rejects_bad_output(self):
        for text in ("", "not json", '{"mean_s": 1.0}', '{"median_s": 0}', '{"median_s": "fast"}', '{"median_s": true}'):
            with self.subTest(text=text), self.assertRaises(tts.ToolError):
                tts.parse_recur_json(text, 8)

    def test_recur_command_and_environment(self):
        calls = []

        def runner(cmd, **kw):
            calls.append((cmd, kw["env"]["RAYON_NUM_THREADS"]))
            return Completed(0, '{"median_s": 2.0, "batch": 32}')

        self.assertEqual(tts.run_recur("bin/recur", 32, 2, 1, 4, runner=runner)["median_s"], 2.0)
        self.assertEqual(calls, [([
            "bin/recur", "bench", "step", "--preset", "trm-att-sudoku", "--batch", "32", "--device", "cpu",
            "--set", "forward_dtype=float32", "--warmup", "1", "--steps", "4", "--threads", "2", "--json"], "2")])

    def test_recur_on_other_threads_is_refused(self):
        runner = lambda cmd, **kw: Completed(0, '{"median_s": 2.0, "batch": 8, "threads": 16}')  # noqa: E731
        with self.assertRaisesRegex(tts.ToolError, "16 threads, not 2"):
            tts.run_recur("recur", 8, 2, 1, 1, runner=runner)

    def test_recur_failure_is_reported(self):
        runner = lambda cmd, **kw: Completed(2, "", "error: unknown subcommand 'step'")  # noqa: E731
        with self.assertRaisesRegex(tts.ToolError, "exited 2: error: unknown subcommand 'step'"):
            tts.run_recur("recur", 8, 2, 1, 1, runner=runner)

    # --- the table

    def test_ratio_table(self):
        rows = tts.combine([fake_official(None, 8, 2, 0, 1, 0), fake_official(None, 32, 2, 0, 1, 0)],
                           {8: {"median_s": 2.0}, 32: {"median_s": 32.0}})
        self.assertEqual([r["ratio"] for r in rows], [2.0, 0.5])
        table = tts.format_table(rows)
        self.assertIn("| 8 | 2.000 | 4.000 | 2.000 | 2.00 | 0.25 |", table)
        self.assertIn("| 32 | 8.000 | 16.000 | 32.000 | 0.50 | 0.25 |", table)

    def test_table_without_recur(self):
        rows = tts.combine([fake_official(None, 8, 2, 0, 1, 0)], {})
        self.assertEqual((rows[0]["recur_step_s"], rows[0]["ratio"]), (None, None))
        self.assertIn("| 8 | 2.000 | 4.000 | — | — | 0.25 |", tts.format_table(rows))

    def test_other_cores(self):
        # 10 s of wall: the machine used 25 CPU-seconds, this process 20 of them.
        self.assertEqual(tts.other_cores(100.0, 1.0, 125.0, 21.0, 10.0), 0.5)
        self.assertEqual(tts.other_cores(100.0, 1.0, 110.0, 12.0, 10.0), 0.0)  # tick rounding
        self.assertIsNone(tts.other_cores(None, 1.0, None, 2.0, 10.0))
        busy = tts.busy_cpu_s()
        if busy is not None:
            self.assertGreater(busy, 0)

    # --- whole runs with the official timing stubbed and the fake recur

    def whole_run(self, extra):
        with mock.patch.object(tts, "import_torch"), mock.patch.object(tts, "time_official", fake_official):
            return self.run_main(["--trm-repo", self.repo, "--recur", self.recur, "--threads", "3",
                                  "--batch", "8", "32"] + extra)

    def test_whole_run_table(self):
        rc, out, err = self.whole_run([])
        self.assertEqual(rc, 0, err)
        self.assertIn("| 8 | 2.000 | 4.000 | 0.800 | 5.00 | 0.25 |", out)
        self.assertIn("| 32 | 8.000 | 16.000 | 3.200 | 5.00 | 0.25 |", out)

    def test_whole_run_json(self):
        rc, out, err = self.whole_run(["--json"])
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual([(r["batch"], r["recur_step_s"], r["ratio"]) for r in doc["rows"]],
                         [(8, 0.8, 5.0), (32, 3.2, 5.0)])
        self.assertEqual((doc["threads"], doc["torch"], doc["official_commit"]), (3, "0.0-fake", None))

    def test_whole_run_no_recur(self):
        rc, out, err = self.whole_run(["--no-recur", "--recur", "/nonexistent"])
        self.assertEqual(rc, 0, err)
        self.assertIn("| 32 | 8.000 | 16.000 | — | — | 0.25 |", out)


if __name__ == "__main__":
    unittest.main()
