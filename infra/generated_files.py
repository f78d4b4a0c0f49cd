"""Write or check the files a definition script generates (infra/kafka/acls.py, infra/clickhouse/roles.py).

One home for the ``--write`` / ``--check`` behaviour both scripts share: unchanged files are left
alone, shell scripts stay executable, and ``--check`` names every stale file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path


def sync(files: Mapping[Path, str], *, write: bool, root: Path, script: str) -> int:
    """Rewrite (``write``) or check ``files`` (path → wanted text); 1 when a checked file is stale."""
    stale = []
    for path, text in files.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        if write:
            path.write_text(text, encoding="utf-8")
            if path.suffix == ".sh":
                path.chmod(0o755)
            print(f"wrote {path.relative_to(root)}")
        else:
            stale.append(str(path.relative_to(root)))
    if stale:
        print(f"stale (run: python {script} --write): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0
