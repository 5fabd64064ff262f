"""What the GPU would execute, read without a GPU: the SASS of the compiled
CUDA kernels (cuobjdump, from the CUDA toolkit or the copy triton ships),
summarized per kernel — instructions, local-memory (spill) accesses, and the
hottest loop: the backward branch enclosing the most FMAs, with its mix of
FMAs, shared and global loads and the rest. For a GEMM, the loop's length
per FMA is the instruction overhead of a depth tile, and the FMAs the loop
runs before its first global load say whether the next tile's loads are
issued ahead of the multiply or after it, and the fewest FMAs between a
global load and the first instruction that reads its value how much of
the multiply hides a load's latency.

    python tools/sass_report.py [--match REGEX] [objects or cubins...]

Without objects it reads the CUDA objects of the last `make build`
(build/temp*/csrc/cuda/*.o).
"""

import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys

FMA = re.compile(r"^[HFD]FMA2?$")
GROUPS = (
    ("fma", FMA),
    ("lds", re.compile(r"^LDS")),
    ("sts", re.compile(r"^STS")),
    ("ldg", re.compile(r"^LDG")),
    # Generic loads (LD): a pointer read from shared memory is generic to
    # nvcc; on a GPU these read global memory.
    ("ld", re.compile(r"^LD(\.|$)")),
    ("stg", re.compile(r"^STG")),
    ("spill", re.compile(r"^(LDL|STL)")),
    ("branch", re.compile(r"^(BRA|BSSY|BSYNC)")),
)
PATTERNS = dict(GROUPS)


def cuobjdump():
    found = shutil.which("cuobjdump")
    for root in filter(None, [os.environ.get("CUDA_HOME"), "/usr/local/cuda"]):
        candidate = os.path.join(root, "bin", "cuobjdump")
        if not found and os.path.exists(candidate):
            found = candidate
    if not found:
        try:
            import triton

            tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
            candidate = os.path.join(tools, "cuobjdump")
            found = candidate if os.path.exists(candidate) else None
        except ImportError:
            pass
    if not found:
        sys.exit("sass_report: no cuobjdump (CUDA toolkit or triton) found")
    return found


def functions(sass):
    """(name, [(address, opcode, text)]) for each function in cuobjdump's output."""
    name, body = None, []
    for line in sass.splitlines():
        header = re.match(r"\s*Function : (\S+)", line)
        if header:
            if name:
                yield name, body
            name, body = header.group(1), []
            continue
        instr = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if instr and name:
            text = re.sub(r"^@!?U?PT?\d*\s+", "", instr.group(2))
            body.append((int(instr.group(1), 16), text.split()[0], text))
    if name:
        yield name, body


def mix(instrs):
    counts = collections.Counter()
    for _, opcode, _ in instrs:
        group = next((g for g, pattern in GROUPS if pattern.match(opcode)), "other")
        counts[group] += 1
    return counts


def hottest_loop(body):
    """The instructions between a backward branch's target and the branch,
    for the branch enclosing the most FMAs."""
    index = {address: i for i, (address, _, _) in enumerate(body)}
    best = []
    for i, (address, opcode, text) in enumerate(body):
        target = re.search(r"BRA\s+(?:`\()?(0x[0-9a-f]+)", text)
        if opcode != "BRA" or not target:
            continue
        start = index.get(int(target.group(1), 16))
        if start is None or start > i:
            continue
        loop = body[start : i + 1]
        if mix(loop)["fma"] > mix(best)["fma"]:
            best = loop
    return best


def fmas_before_first_load(loop):
    """The loop's FMAs before its first global (or generic) load; None
    without one."""
    fmas = 0
    for _, opcode, _ in loop:
        if is_global_load(opcode):
            return fmas
        fmas += FMA.match(opcode) is not None
    return None


def is_global_load(opcode):
    return bool(PATTERNS["ldg"].match(opcode) or PATTERNS["ld"].match(opcode))


def load_destination(opcode, text):
    """The registers a load writes: its first operand, as wide as the load."""
    first = re.match(r"\S+\s+R(\d+)\b", text)
    if not first:
        return set()
    width = 4 if ".128" in opcode else 2 if ".64" in opcode else 1
    return set(range(int(first.group(1)), int(first.group(1)) + width))


def registers_read(opcode, text):
    """The registers an instruction reads: every operand of a store, the
    operands after the destination of anything else."""
    parts = text.split(None, 1)
    operands = parts[1].split(",") if len(parts) > 1 else []
    if not opcode.startswith("ST"):
        operands = operands[1:]
    return {int(r) for operand in operands for r in re.findall(r"\bR(\d+)\b", operand)}


def fmas_from_load_to_use(loop):
    """The fewest FMAs the loop runs between a global (or generic) load and
    the first instruction that reads what it loaded, going round the loop
    where the use comes in the next iteration: how much of the multiply
    hides the load's latency. None without a load."""
    fewest = None
    for i, (_, opcode, text) in enumerate(loop):
        if not is_global_load(opcode):
            continue
        loaded, fmas = load_destination(opcode, text), 0
        for j in range(1, len(loop) + 1):
            _, later, later_text = loop[(i + j) % len(loop)]
            if loaded & registers_read(later, later_text):
                fewest = fmas if fewest is None else min(fewest, fmas)
                break
            fmas += FMA.match(later) is not None
    return fewest


def readable(mangled):
    """The kernel's functor type, demangled (c++filt) and without namespaces."""
    try:
        name = subprocess.run(["c++filt", mangled], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return mangled
    inner = re.match(r"void cnnfast::run(?:_block)?_kernel<(.*)>\(.*\)$", name)
    name = inner.group(1) if inner else name
    return re.sub(r"\b(cnnfast|kernels|c10)::", "", name).replace(" >", ">").strip()


def report(objects, match):
    tool = cuobjdump()
    print("| kernel | instructions | spill accesses | hottest loop | FMA | LDS | LDG + LD | STS | other "
          "| loop per FMA | FMAs before a global load | FMAs from a load to its use |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for path in objects:
        sass = subprocess.run([tool, "-sass", path], capture_output=True, text=True, check=True).stdout
        for name, body in functions(sass):
            if match and not re.search(match, name):
                continue
            total = mix(body)
            loop = hottest_loop(body)
            m = mix(loop)
            per_fma = f"{len(loop) / m['fma']:.2f}" if m["fma"] else ""
            loads = m["ldg"] + m["ld"]
            rest = len(loop) - m["fma"] - m["lds"] - loads - m["sts"]
            before = fmas_before_first_load(loop) if m["fma"] else None
            hidden = fmas_from_load_to_use(loop) if m["fma"] else None
            print(f"| {readable(name)} | {len(body)} | {total['spill']} | {len(loop)} | {m['fma']} | "
                  f"{m['lds']} | {loads} | {m['sts']} | {rest} | {per_fma} | {'' if before is None else before} "
                  f"| {'' if hidden is None else hidden} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("objects", nargs="*")
    parser.add_argument("--match", help="only kernels whose mangled name matches this regex")
    args = parser.parse_args()
    objects = args.objects or sorted(glob.glob("build/temp*/csrc/cuda/*.o"))
    if not objects:
        sys.exit("sass_report: no CUDA objects (run make build with a CUDA toolkit first)")
    report(objects, args.match)


if __name__ == "__main__":
    main()
