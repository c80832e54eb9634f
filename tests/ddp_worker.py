"""Entry points for the data-parallel tests (importable by the spawned ranks: the tests folder
is on ``sys.path`` under pytest, and spawned processes inherit it).

:func:`audited` runs a training function in a rank and records every file that rank opened
for writing, created or renamed, so a test can show that only rank 0 writes.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def audited(report_dir: str, fn, *args, **kwargs):
    rank = int(os.environ.get("RANK", 0))
    written: list[str] = []

    def hook(event, args):
        if event == "open" and args[1] and any(c in str(args[1]) for c in "wax+"):
            written.append(str(args[0]))
        elif event == "open" and isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR):
            written.append(str(args[0]))
        elif event in ("os.rename", "os.replace", "os.mkdir", "os.symlink"):
            written.append(str(args[1] if event != "os.mkdir" else args[0]))

    sys.addaudithook(hook)
    try:
        return fn(*args, **kwargs)
    finally:
        ours = Path(report_dir) / f"rank{rank}.json"
        files = sorted({w for w in written if not w.startswith(("/dev/", "/proc/", "/tmp/torch"))})
        ours.write_text(json.dumps(files))
