"""tools/sass_report.py's reading of cuobjdump's SASS listing."""

import importlib.util
import pathlib

from helpers import ONCE

spec = importlib.util.spec_from_file_location(
    "sass_report", pathlib.Path(__file__).resolve().parents[1] / "tools" / "sass_report.py")
sass_report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sass_report)

# Two functions in cuobjdump's layout: the first with an outer loop
# (0x0010-0x0070) around an inner one holding more FMAs (0x0020-0x0050),
# and a spill; the second without a loop.
LISTING = """
\t\tFunction : _Z4gemmv
\t.headerflags\t@"EF_CUDA_SM90 EF_CUDA_VIRTUAL_SM(EF_CUDA_SM90)"
        /*0000*/                   STL [R1], R2 ;                       /* 0x0 */
        /*0010*/                   LDG.E R4, desc[UR4][R2.64] ;         /* 0x0 */
        /*0020*/                   LDS.128 R8, [R0] ;                   /* 0x0 */
        /*0030*/                   FFMA R12, R8, R9, R12 ;              /* 0x0 */
        /*0040*/                   FFMA R13, R10, R11, R13 ;            /* 0x0 */
        /*0050*/              @P0  BRA 0x20 ;                           /* 0x0 */
        /*0060*/                   FFMA R14, R8, R9, R14 ;              /* 0x0 */
        /*0070*/              @!P1 BRA 0x10 ;                           /* 0x0 */
        /*0080*/                   EXIT ;                               /* 0x0 */
\t\tFunction : _Z4copyv
        /*0000*/                   LDG.E R4, desc[UR4][R2.64] ;         /* 0x0 */
        /*0010*/                   STG.E desc[UR4][R6.64], R4 ;         /* 0x0 */
        /*0020*/                   EXIT ;                               /* 0x0 */
"""


@ONCE
def test_functions_loops_and_mix():
    functions = dict(sass_report.functions(LISTING))
    assert list(functions) == ["_Z4gemmv", "_Z4copyv"]
    gemm = functions["_Z4gemmv"]
    assert len(gemm) == 9 and gemm[5][1] == "BRA"  # the predicate is not the opcode
    assert sass_report.mix(gemm)["spill"] == 1
    # The outer loop encloses three FMAs, the inner one two.
    loop = sass_report.hottest_loop(gemm)
    assert [address for address, _, _ in loop] == [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70]
    counts = sass_report.mix(loop)
    assert (counts["fma"], counts["lds"], counts["ldg"], counts["branch"]) == (3, 1, 1, 2)
    assert sass_report.hottest_loop(functions["_Z4copyv"]) == []
    # The loop's global load comes first; without one there is no count.
    assert sass_report.fmas_before_first_load(loop) == 0
    assert sass_report.fmas_before_first_load(gemm[2:]) is None


@ONCE
def test_fmas_before_first_load_counts_generic_loads():
    """A load through a pointer read from shared memory is generic (LD) and
    counts as a global load; shared-memory loads do not."""
    loop = [(0, "FFMA", ""), (1, "LDS.128", ""), (2, "FFMA", ""), (3, "LD.E", ""), (4, "FFMA", ""),
            (5, "LDG.E", "")]
    assert sass_report.fmas_before_first_load(loop) == 2
    assert sass_report.mix(loop)["ld"] == 1 and sass_report.mix(loop)["ldg"] == 1


@ONCE
def test_fmas_from_load_to_use():
    """FMAs between a global load and the first instruction reading any
    register it wrote (as wide as the load; a store reads all its operands,
    anything else all but its destination), going round the loop."""
    loop = [(0, "LDG.E", "LDG.E R4, desc[UR4][R2.64]"),
            (1, "FFMA", "FFMA R4, R9, R10, R8"),  # writes R4: not a use
            (2, "FFMA", "FFMA R8, R9, R10, R8"),
            (3, "STS", "STS [R3], R4"),
            (4, "LDG.E.64", "LDG.E.64 R6, desc[UR4][R2.64]"),
            (5, "FFMA", "FFMA R8, R9, R10, R8"),
            (6, "FSEL", "FSEL R12, R7, RZ, P0")]
    assert sass_report.load_destination("LDG.E.64", loop[4][2]) == {6, 7}
    assert sass_report.registers_read("STS", loop[3][2]) == {3, 4}
    assert sass_report.registers_read("FFMA", loop[1][2]) == {9, 10, 8}
    assert sass_report.fmas_from_load_to_use(loop) == 1  # R7, one FMA after the second load
    assert sass_report.fmas_from_load_to_use(loop[:4]) == 2
    # A load at the loop's end, used in the next iteration.
    wrapped = [(0, "FFMA", "FFMA R9, R9, R10, R9"), (1, "FFMA", "FFMA R8, R4, R10, R8"),
               (2, "LD.E", "LD.E R4, desc[UR4][R2.64]")]
    assert sass_report.fmas_from_load_to_use(wrapped) == 1
    assert sass_report.fmas_from_load_to_use(loop[1:4]) is None
