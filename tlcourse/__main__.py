"""Command line: ``python -m tlcourse <command> [options]``.

Commands:
    casestudy   run the MNIST -> CIFAR-10 case study and write results (tlcourse.casestudy_cli)
    instructor  student copies of the notebooks, and offline data packs (tlcourse.instructor)

``python -m tlcourse <command> --help`` lists each command's options.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "casestudy": ("tlcourse.casestudy_cli", "run the MNIST -> CIFAR-10 case study and write results"),
    "instructor": ("tlcourse.instructor", "student copies of the notebooks; offline data packs"),
}


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the ``main(argv)`` of the command's module; return its exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"} or args[0] not in COMMANDS:
        lines = [f"  {name:11s} {help_}" for name, (_, help_) in COMMANDS.items()]
        print("usage: python -m tlcourse <command> [options]\n\ncommands:\n" + "\n".join(lines))
        return 0 if args and args[0] in {"-h", "--help"} else 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
