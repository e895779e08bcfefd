"""The lock (requirements.lock) matches requirements.txt: every direct pin is locked at
the same version, so `make install` installs exactly what requirements.txt promises."""

import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def pins(text: str) -> dict[str, Version]:
    out = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip().rstrip("\\").strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{line}: pin with =="
        out[canonicalize_name(req.name)] = Version(spec.version)
    return out


def test_every_direct_requirement_is_pinned_and_locked_at_the_same_version():
    direct = pins((ROOT / "requirements.txt").read_text())
    locked = pins(re.sub(r"\\\n\s*--hash=\S+", "", (ROOT / "requirements.lock").read_text()))
    assert len(locked) > len(direct)  # the lock holds the transitive dependencies too
    for name, version in direct.items():
        assert name in locked, f"{name} is in requirements.txt but not in requirements.lock: run make lock"
        # torch==2.13.0 is locked as the CPU build 2.13.0+cpu: compare public versions
        assert Version(locked[name].public) == version, (
            f"{name}: requirements.txt pins {version}, the lock has {locked[name]}: run make lock"
        )


def test_every_locked_package_has_a_hash():
    text = (ROOT / "requirements.lock").read_text()
    entries = re.findall(r"^(\S+==\S+)((?:\s*\\\n\s*--hash=\S+)*)", text, flags=re.M)
    assert entries and all("--hash=sha256:" in hashes for _, hashes in entries)
