"""MkDocs hook: every public name has a reference entry (``::: module.name``), so the API
reference cannot silently fall behind the code.  A missing one is a warning, which
``mkdocs build --strict`` turns into a failure."""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.plugins.mindckpt")

#: modules whose ``__all__`` must be covered, and names covered by a module-level entry
PUBLIC = ("mindckpt", "mindckpt.train", "mindckpt.parallel", "mindckpt.verify", "mindckpt.diff",
          "mindckpt.tools", "mindckpt.listing", "mindckpt.importers")
SKIP_KINDS = ("module",)


def on_pre_build(config: Any) -> None:
    docs = Path(config["docs_dir"])
    text = "\n".join(p.read_text(encoding="utf-8") for p in (docs / "reference").glob("*.md"))
    targets = set(re.findall(r"^::: ([\w.]+)", text, re.M))
    documented = {t.rsplit(".", 1)[-1] for t in targets}
    missing = []
    for modname in PUBLIC:
        mod = importlib.import_module(modname)
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name, None)
            if obj is None or type(obj).__name__ in SKIP_KINDS or not callable(obj):
                continue  # modules, constants, dtype objects (documented with their module)
            if type(obj).__name__ == "Type":
                continue
            if name not in documented:
                missing.append(f"{modname}.{name}")
    for name in missing:
        log.warning("the API reference (docs/reference/*.md) has no '::: %s' entry", name)
