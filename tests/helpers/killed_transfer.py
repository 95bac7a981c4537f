"""A child process for kill tests: transfers files with faceiqa's Transferer and, when asked,
SIGKILLs itself at the N-th call of one step inside a transfer (a white-box hook that lives
in the test, not in faceiqa).

    python killed_transfer.py SRC OUT MODE [STEP N]

STEP is ``copied`` (a temporary copy is complete and flushed, before it gets its name),
``linked`` (a name was taken with os.link, before the temporary file or the source is
removed) or ``unlink`` (just before a source or temporary file is removed).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def main() -> None:
    src, out, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    import faceiqa.output.fileops as fo

    if len(sys.argv) > 5:
        step, nth = sys.argv[4], int(sys.argv[5])
        calls = {"n": 0}

        def hit() -> None:
            calls["n"] += 1
            if calls["n"] == nth:
                os.kill(os.getpid(), signal.SIGKILL)

        if step == "copied":
            real_copy = fo._copy_to_temp

            def copied(*a, **k):
                tmp = real_copy(*a, **k)
                hit()
                return tmp

            fo._copy_to_temp = copied
        elif step == "linked":
            real_link = os.link

            def linked(a, b, **k):
                real_link(a, b, **k)
                hit()

            fo.os.link = linked
        elif step == "unlink":
            real_unlink = Path.unlink

            def unlink(self, *a, **k):
                hit()
                return real_unlink(self, *a, **k)

            Path.unlink = unlink
    t = fo.Transferer(out, mode)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        r = t.transfer(f, src)
        if not r.done:
            print(f"FAILED {f}: {r.error}", file=sys.stderr)


if __name__ == "__main__":
    main()
