"""Typed failures: each exception maps to its documented kind and exit code, the CLI writes
failure.json on every failure, a missing package fails before any model loads, and `probe` reports
the packages configs need and the GPUs it sees."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from typing import Any
from unittest import mock

from lem_worker import deps
from lem_worker.devicelock import DeviceLockTimeout
from lem_worker.errors import ConfigError, MissingDependency, OutOfMemory, Terminated, WorkerError
from lem_worker.failure import classify

WORKER_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = WORKER_ROOT
    return subprocess.run([sys.executable, "-m", "lem_worker", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60)


def pytorch_exp(**over: Any) -> dict[str, Any]:
    exp: dict[str, Any] = {
        "backend": "pytorch",
        "model": {"id": "org/model"},
        "precision": "fp32",
        "batching": {"strategy": "static", "batch_size": 1},
        "max_input_tokens": 16,
        "max_output_tokens": 2,
        "prompts": {"source": "builtin", "name": "short", "count": 1},
        "measurement": {"idle_baseline_s": 0, "min_window_s": 0, "sample_interval_ms": 100},
        "extra": {},
    }
    exp.update(over)
    return exp


class OutOfMemoryErrorLike(RuntimeError):
    pass


OutOfMemoryErrorLike.__name__ = "OutOfMemoryError"  # as torch.cuda.OutOfMemoryError is named


class ClassifyTest(unittest.TestCase):
    def kind(self, exc: BaseException) -> tuple[str, int]:
        f = classify(exc)
        return f.kind, f.exit_code

    def test_each_kind_and_exit_code(self) -> None:
        self.assertEqual(self.kind(WorkerError("engine died")), ("engine_error", 1))
        self.assertEqual(self.kind(RuntimeError("boom")), ("engine_error", 1))
        self.assertEqual(self.kind(ConfigError("experiment.x: bad")), ("config_error", 2))
        self.assertEqual(self.kind(MissingDependency("no vllm", ["vllm"])), ("missing_dependency", 3))
        self.assertEqual(self.kind(ModuleNotFoundError("No module named 'datasets'", name="datasets")), ("missing_dependency", 3))
        self.assertEqual(self.kind(ImportError("cannot import name 'LLM' from 'vllm'", name="vllm")), ("missing_dependency", 3))
        self.assertEqual(self.kind(OutOfMemory("KV cache does not fit")), ("out_of_memory", 4))
        self.assertEqual(self.kind(MemoryError()), ("out_of_memory", 4))
        self.assertEqual(self.kind(OutOfMemoryErrorLike("Tried to allocate 2.00 GiB")), ("out_of_memory", 4))
        self.assertEqual(self.kind(RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")), ("out_of_memory", 4))
        self.assertEqual(self.kind(DeviceLockTimeout("gave up after 5s")), ("lock_timeout", 75))
        self.assertEqual(self.kind(Terminated("SIGTERM")), ("terminated", 143))

    def test_detail_names_the_missing_package(self) -> None:
        f = classify(ModuleNotFoundError("No module named 'datasets.load'", name="datasets.load"))
        self.assertEqual(f.detail["packages"], ["datasets"])
        self.assertIn("datasets", f.message)
        doc = f.document()
        self.assertEqual(doc["schema"], "lem.failure/1")
        self.assertEqual(set(doc), {"schema", "kind", "exit_code", "message", "detail"})


class DepsTest(unittest.TestCase):
    def test_needs_follow_the_config(self) -> None:
        pk = lambda raw: sorted(n.package for n in deps.needs(raw))  # noqa: E731
        self.assertEqual(pk(pytorch_exp()), ["torch", "transformers"])
        self.assertEqual(pk(pytorch_exp(backend="vllm", prompts={"source": "huggingface", "dataset": "d"})), ["datasets", "vllm"])
        self.assertEqual(pk({"backend": "tensorrt"}), ["tensorrt_llm"])
        self.assertEqual(pk({"backend": "vllm", "vllm": {"endpoint": "http://127.0.0.1:8000"}}), [])
        self.assertEqual(pk({"backend": "vllm", "vllm": {"mode": "server"}}), [])
        self.assertEqual(pk({"backend": "calibration", "calibration": {"device": "cuda"}}), ["numpy", "torch"])

    def test_check_lists_every_missing_package(self) -> None:
        with mock.patch.object(deps, "installed", lambda p: p == "torch"):
            with self.assertRaises(MissingDependency) as ctx:
                deps.check(pytorch_exp(prompts={"source": "huggingface", "dataset": "d"}))
        self.assertEqual(ctx.exception.packages, ["datasets", "transformers"])
        self.assertIn("prompts.source huggingface", str(ctx.exception))


class CliFailureTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.out = os.path.join(self.tmp.name, "out")

    def run_config(self, doc: Any) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        path = os.path.join(self.tmp.name, "config.json")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(doc if isinstance(doc, str) else json.dumps(doc))
        r = run_cli(["run", path, "--out", self.out])
        self.assertFalse(os.path.exists(os.path.join(self.out, "result.json")))
        with open(os.path.join(self.out, "failure.json"), encoding="utf-8") as fh:
            return r, json.load(fh)

    def test_bad_config_exits_2_with_failure_json(self) -> None:
        r, f = self.run_config("{not json")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual((f["schema"], f["kind"], f["exit_code"]), ("lem.failure/1", "config_error", 2))
        self.assertIn("bad config", r.stderr)
        self.assertNotIn("Traceback", r.stderr)

    @unittest.skipIf(deps.installed("transformers") and deps.installed("datasets"), "needs an interpreter without transformers or datasets")
    def test_missing_package_exits_3_before_any_model_loads(self) -> None:
        run = {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1}
        r, f = self.run_config({"run": run, "experiment": pytorch_exp(prompts={"source": "huggingface", "dataset": "org/ds", "split": "train"})})
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(f["kind"], "missing_dependency")
        self.assertTrue(set(f["detail"]["packages"]) <= {"torch", "transformers", "datasets"} and f["detail"]["packages"])
        self.assertIn("missing dependency", r.stderr)
        self.assertNotIn("loading", r.stderr.lower())  # the model was never loaded


class ProbeCliTest(unittest.TestCase):
    def test_probe_reports_needed_packages_and_gpus(self) -> None:
        configs = [pytorch_exp(), {"backend": "vllm"}, {"experiment": {"backend": "calibration"}}]
        r = run_cli(["probe", "--json", "--configs", "-"], stdin=json.dumps(configs))
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["schema"], "lem.probe/1")
        self.assertIn("vllm", doc["packages"])
        self.assertIsNone(doc["packages"]["vllm"])  # not in this interpreter
        self.assertIsNotNone(doc["packages"]["numpy"])
        by_pkg = {m["package"]: m["needed_by"] for m in doc["missing"]}
        self.assertEqual(by_pkg["vllm"], ["backend vllm"])
        self.assertNotIn("numpy", by_pkg)
        self.assertEqual(set(doc["gpus"]), {"count", "devices", "source", "reason"})
        self.assertEqual(doc["gpus"]["count"], len(doc["gpus"]["devices"]))

    def test_probe_rejects_configs_without_a_backend(self) -> None:
        r = run_cli(["probe", "--json", "--configs", "-", "--no-gpus"], stdin='[{"model": {}}]')
        self.assertEqual(r.returncode, 2)
        self.assertIn("--configs[0]", r.stderr)


if __name__ == "__main__":
    unittest.main()
