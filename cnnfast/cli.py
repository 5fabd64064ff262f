"""python -m cnnfast {info,demo}"""

import argparse
import json
import sys


def _info(args):
    import cnnfast

    info = cnnfast.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key == "cuda_kernels":
            emulated = sum(k["emulated"] for k in value)
            print(f"{key}: {len(value)} ({emulated} run under the CPU emulation)")
            for kernel in value:
                print(f"  {kernel['name']}: {'emulated' if kernel['emulated'] else kernel['reason']}")
        else:
            print(f"{key}: {value}")


def _demo(args):
    from .demo import run

    run()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cnnfast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="what was built, and what this machine runs")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=_info)
    demo = commands.add_parser("demo", help="a short pooling demo against torch")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
