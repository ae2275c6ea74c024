"""RAPL on a fake powercap tree: discovery, wrap-around, unreadable reasons."""
from __future__ import annotations

import os
import tempfile
import unittest

from lem_worker.energy.rapl import RaplMeter, rapl_delta_j, wrap_delta


def make_zone(root: str, entry: str, name: str, energy: int, max_range: int) -> str:
    d = os.path.join(root, entry)
    os.makedirs(d)
    for fname, value in (("name", name), ("energy_uj", str(energy)), ("max_energy_range_uj", str(max_range))):
        with open(os.path.join(d, fname), "w", encoding="ascii") as fh:
            fh.write(value + "\n")
    return d


def set_energy(zone: str, value: int) -> None:
    with open(os.path.join(zone, "energy_uj"), "w", encoding="ascii") as fh:
        fh.write(f"{value}\n")


class RaplTest(unittest.TestCase):
    def test_wrap_delta(self) -> None:
        self.assertEqual(wrap_delta(100, 250, 1000), 150)
        self.assertEqual(wrap_delta(900, 50, 999), 150)  # 900->999 is 99 uJ, 999->0 is 1, then 50

    def test_absent_root_gives_reason(self) -> None:
        m = RaplMeter(root="/nonexistent/powercap")
        self.assertFalse(m.available)
        self.assertIn("absent", m.reason_cpu or "")
        self.assertEqual(m.snapshot(), {"cpu": None, "dram": None})

    def test_package_and_dram_with_wrap(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            pkg = make_zone(root, "intel-rapl:0", "package-0", 999_000, 999_999)
            dram = make_zone(root, "intel-rapl:0:0", "dram", 10, 999_999)
            make_zone(root, "intel-rapl:0:1", "core", 5, 999_999)
            m = RaplMeter(root=root)
            self.assertTrue(m.available)
            self.assertIsNone(m.reason_cpu)
            self.assertIsNone(m.reason_dram)
            start = m.snapshot()
            set_energy(pkg, 500)  # wrapped: 999_000 -> 999_999 (999) + 1 + 500
            set_energy(dram, 2_000_010)  # no wrap within the poll
            end = m.snapshot()
            self.assertAlmostEqual(rapl_delta_j(start, end, "cpu") or 0, 1500 / 1e6)
            self.assertAlmostEqual(rapl_delta_j(start, end, "dram") or 0, 2.0)
            self.assertEqual(m.wraps(), 1)

    def test_no_dram_zone_reason(self) -> None:
        with tempfile.TemporaryDirectory() as root:
            make_zone(root, "intel-rapl:0", "package-0", 1, 999)
            m = RaplMeter(root=root)
            self.assertIsNone(m.reason_cpu)
            self.assertIn("dram", m.reason_dram or "")


if __name__ == "__main__":
    unittest.main()
