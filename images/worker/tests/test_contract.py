"""The worker's side of the contract: schema checks on the config it receives and the result it writes,
the moved extra: knobs, a missing jsonschema, and the worker's backend registry against the orchestrator's."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from typing import Any

from lem_worker import jsoncontract
from lem_worker.backends import registered
from lem_worker.config import parse_config
from lem_worker.errors import ConfigError, WorkerError
from tests.test_cli_calibration import WORKER_ROOT, calibration_config, run_cli


def pytorch_doc(**exp: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"backend": "pytorch", "model": {"id": "m"}}
    e.update(exp)
    return {"run": {"run_id": "r", "experiment_id": "e", "cycle": 1, "attempt": 1}, "experiment": e}


class ConfigContractTest(unittest.TestCase):
    def write(self, doc: Any) -> str:
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d], check=False))
        path = os.path.join(d, "CONFIG.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        return path

    def test_unknown_field_is_a_config_error_with_its_path_exit_2(self) -> None:
        doc = calibration_config()
        doc["experiment"]["calibration"]["bogus"] = 1
        doc["experiment"]["measurement"]["idle_baselin_s"] = 3
        path = self.write(doc)
        proc = run_cli(["run", path, "--out", os.path.dirname(path)])
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("experiment.calibration.bogus: unknown field", proc.stderr)
        self.assertIn("experiment.measurement.idle_baselin_s: unknown field", proc.stderr)
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(path), "result.json")))

    def test_field_errors_follow_the_tagged_unions(self) -> None:
        cases = [
            (pytorch_doc(prompts={"source": "builtin", "colum": "x"}), "experiment.prompts.colum: unknown field"),
            (pytorch_doc(precision="fp64"), "experiment.precision:"),
            (pytorch_doc(vllm={}), "experiment.vllm: unknown field"),
            ({"run": pytorch_doc()["run"], "experiment": {"backend": "onnx"}}, "experiment.backend: 'onnx' is not one of pytorch, vllm, tensorrt, calibration"),
            (pytorch_doc(quantization={"method": "fp8"}), "experiment.quantization.method: fp8 is not supported by the pytorch"),
        ]
        for doc, needle in cases:
            with self.assertRaises(ConfigError, msg=needle) as cm:
                parse_config(doc)
            self.assertIn(needle, str(cm.exception))

    def test_a_knob_still_under_extra_names_where_it_moved(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            parse_config(pytorch_doc(extra={"prefill_split": False}))
        self.assertIn("experiment.extra.prefill_split: moved: write it as experiment.measurement.prefill_split", str(cm.exception))
        cfg = parse_config(pytorch_doc(extra={"swap_space": 4}, measurement={"prefill_split": False},
                                       prompts={"source": "builtin", "seed": 9, "chat_template": False}))
        self.assertEqual(cfg.experiment.extra, {"swap_space": 4})
        self.assertEqual((cfg.experiment.measurement.prefill_split, cfg.experiment.prompts.seed,
                          cfg.experiment.prompts.chat_template), (False, 9, False))

    def test_missing_jsonschema_exits_3_with_the_package_named(self) -> None:
        path = self.write(calibration_config())
        code = ("import sys; sys.modules['jsonschema'] = None; from lem_worker.cli import main; "
                f"sys.exit(main(['run', {path!r}, '--out', {os.path.dirname(path)!r}]))")
        env = dict(os.environ, PYTHONPATH=WORKER_ROOT)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(proc.returncode, 3, proc.stderr)
        self.assertIn("python3-jsonschema", proc.stderr)


class ResultContractTest(unittest.TestCase):
    def test_extra_is_recorded_in_the_result_workload(self) -> None:
        doc = calibration_config()
        doc["experiment"]["extra"] = {"scenario": "energy_star"}
        d = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d], check=False))
        path = os.path.join(d, "CONFIG.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh)
        proc = run_cli(["run", path, "--out", d])
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.path.join(d, "result.json"), encoding="utf-8") as fh:
            self.assertEqual(json.load(fh)["workload"]["extra"], {"scenario": "energy_star"})

    def test_a_result_that_breaks_the_schema_is_refused(self) -> None:
        with self.assertRaises(WorkerError) as cm:
            jsoncontract.check_result({"schema_version": 3, "run_id": ""})
        self.assertIn("result contract", str(cm.exception))


class BackendRegistryTest(unittest.TestCase):
    def test_worker_registers_exactly_the_orchestrators_backends(self) -> None:
        self.assertEqual(registered(), sorted(jsoncontract.backends()))


if __name__ == "__main__":
    unittest.main()
