"""Commands printed for the user to run next, spelled as the user ran hyperfcn.

A hint that says `hyperfcn tune ... --resume` fails for someone who ran
`.venv/bin/hyperfcn` or `python -m hyperfcn`; every hint starts with :func:`prog`.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


def prog(argv0: str | None = None) -> str:
    """The command that started this process, as the user would type it again."""
    a0 = argv0 if argv0 is not None else sys.argv[0]
    name = Path(a0).name
    if name in ("__main__.py", "cli.py") or not a0:
        return f"{shlex.quote(sys.executable)} -m hyperfcn"
    on_path = shutil.which(name)
    if os.sep in a0 and (on_path is None or Path(on_path).resolve() != Path(a0).resolve()):
        return shlex.quote(a0)  # a path the user typed (.venv/bin/hyperfcn)
    return name


# user:password@ (or token@) after a URL's scheme
_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it left out (``http://u:pw@h`` ->
    ``http://h``): what hyperfcn writes or prints never holds a password."""
    return _USERINFO.sub("", text)


def command(args: Sequence[str], argv0: str | None = None) -> str:
    """The command line as the user would type it again, credentials left out."""
    return " ".join([prog(argv0), *(shlex.quote(redact(str(a))) for a in args)])


def tensorboard() -> str:
    """`tensorboard`, or its path beside this Python when it is not on PATH."""
    if shutil.which("tensorboard"):
        return "tensorboard"
    beside = Path(sys.executable).parent / "tensorboard"
    return shlex.quote(str(beside)) if beside.is_file() else "tensorboard"


def _extra_requirements(extra: str) -> list[str]:
    """The requirements hyperfcn's installed metadata declares for ``extra``."""
    try:
        reqs = importlib.metadata.requires("hyperfcn") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    marker = re.compile(rf"""extra\s*==\s*["']{re.escape(extra)}["']""")
    return [r.split(";")[0].strip() for r in reqs if marker.search(r)]


def install(extra: str) -> str:
    """The command that installs an extra's packages into the Python running hyperfcn, the
    packages named as hyperfcn declares them: hyperfcn is installed from a checkout, and
    ``pip install 'hyperfcn[extra]'`` would fetch whatever PyPI has under that name."""
    pkgs = _extra_requirements(extra)
    if not pkgs:  # metadata without the extra: a checkout's own spelling
        return f"pip install '.[{extra}]' (in hyperfcn's checkout)"
    pip = f"{shlex.quote(sys.executable)} -m pip install"
    return " ".join([pip, *(shlex.quote(p) for p in pkgs)])
