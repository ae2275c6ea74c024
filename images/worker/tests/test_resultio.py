"""result.json is written with the mode every run file has (0644), whatever the umask."""
from __future__ import annotations

import os
import stat
import tempfile
import unittest

from lem_worker.resultio import RUN_FILE_MODE, write_result_atomic


class ResultFileModeTest(unittest.TestCase):
    def test_mode_is_run_file_mode_under_a_strict_umask(self) -> None:
        old = os.umask(0o077)
        try:
            with tempfile.TemporaryDirectory() as d:
                path = write_result_atomic(d, {"ok": True})
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), RUN_FILE_MODE)
                self.assertEqual(RUN_FILE_MODE, 0o644)
                self.assertEqual([n for n in os.listdir(d) if n.startswith(".result.")], [])
        finally:
            os.umask(old)


if __name__ == "__main__":
    unittest.main()
