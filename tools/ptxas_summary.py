"""Summarizes ptxas -v output (stdin): one line per CUDA kernel with its
registers, stack frame, spill stores/loads and shared memory; exits 1 if
any kernel spills. Used by `make ptxas-report`."""

import re
import subprocess
import sys


def demangle(names):
    try:
        out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
        return out.stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return names


def main():
    kernels, current = [], None
    for line in sys.stdin:
        if m := re.search(r"Compiling entry function '(\w+)' for '(\w+)'", line):
            current = {"name": m.group(1), "arch": m.group(2)}
            kernels.append(current)
        elif current and (m := re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)):
            current.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
        elif current and (m := re.search(r"Used (\d+) registers", line)):
            current["registers"] = int(m.group(1))
            smem = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(smem.group(1)) if smem else 0
    names = demangle([k["name"] for k in kernels])
    spills = 0
    for kernel, name in sorted(zip(kernels, names), key=lambda pair: pair[1]):
        name = re.sub(r"^void cnnfast::run_(block_)?kernel<(.*)>\(.*$", r"\2", name).replace("cnnfast::", "")
        spilled = kernel.get("spill_stores", 0) + kernel.get("spill_loads", 0)
        spills += spilled
        print(f"{kernel['arch']}  regs {kernel.get('registers', '?'):>3}  smem {kernel.get('smem', 0):>6}  "
              f"stack {kernel.get('stack', 0):>4}  spills {spilled:>4}  {name}")
    print(f"{len(kernels)} kernels, {'no spills' if spills == 0 else f'{spills} bytes of spills'}")
    return 1 if spills else 0


if __name__ == "__main__":
    sys.exit(main())
