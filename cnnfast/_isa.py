"""The CPU vector ISA: what this CPU has, and which build it can run. Plain
Python with no import of torch or of the extension, so that setup.py loads
this file by path at build time and the loader imports it before the
extension. The ISAs themselves are listed once, in csrc/cpu/isa.json."""

import json


def cpu_flags():
    """This CPU's flags from /proc/cpuinfo, or None where they are unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def load_table(path):
    """The ISA table of csrc/cpu/isa.json: {isa: {"compile": [...],
    "cpuinfo": [...]}}, best first."""
    with open(path) as f:
        return {isa: entry for isa, entry in json.load(f).items() if not isa.startswith("_")}


def choose(table, forced=None):
    """The ISA to build: `forced` (CNNFAST_CPU_ISA) where given, else the
    best one this CPU has."""
    if forced:
        if forced not in table:
            raise ValueError(f"CNNFAST_CPU_ISA must be one of {sorted(table)}, got {forced!r}")
        return forced
    flags = cpu_flags() or set()
    return next(isa for isa, entry in table.items() if all(flag in flags for flag in entry["cpuinfo"]))


def missing_flags(required):
    """The flags of `required` this CPU lacks (none where unknown)."""
    flags = cpu_flags()
    return [] if flags is None else [flag for flag in required if flag not in flags]

