"""tools/pool_bandwidth.py: max pooling's kernels timed back to back, with
the bytes each must move, on the CPU."""

import sys
from pathlib import Path

from helpers import ONCE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import pool_bandwidth  # noqa: E402


@ONCE
def test_a_row_per_kernel_with_the_bytes_it_must_move(capsys):
    pool_bandwidth.main(["--device", "cpu", "--batch", "1", "--calls", "2"])
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    table = {cells[0].strip(): [float(c.strip().rstrip("%")) for c in cells[1:]] for cells in rows[1:]}
    assert list(table) == ["copy (x.clone())", "cnnfast forward", "cnnfast backward", "torch forward",
                           "torch backward"]
    cells_in, cells_out = 96 * 55 * 55, 96 * 27 * 27
    # float32 input and output; one byte of offset a window for cnnfast, eight for torch's index.
    assert table["copy (x.clone())"][1] == round(2 * 4 * cells_in / 1e6, 1)
    assert table["cnnfast forward"][1] == table["cnnfast backward"][1] == round((4 * cells_in + 5 * cells_out) / 1e6, 1)
    assert table["torch forward"][1] == round((4 * cells_in + 12 * cells_out) / 1e6, 1)
    for ms, _, gbps, _, _ in table.values():
        assert ms > 0 and gbps > 0
    assert table["copy (x.clone())"][4] == 100.0
