"""Check that a venv holds exactly the lock, extras included.

Run with the venv's own Python after ``make install`` (``scripts/check_install.sh`` does):

* every package pinned in the given lock files is installed at the pinned version;
* every extra that an installed package asks of another (``httpx[http2]`` from litellm,
  ``celery[redis]``, ``psycopg[binary]``...) is covered: each requirement of that extra is
  installed, in a version the requirement accepts. ``pip check`` looks at plain requirements
  only, and an extra left out of the lock is what lets an old pip pick a newer release.

Exits non-zero with one line per problem.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def locked_pins(paths: list[str]) -> dict[str, str]:
    """Name -> version of every ``name==version`` line in the lock files."""
    pins: dict[str, str] = {}
    for path in paths:
        with open(path, encoding="utf-8") as lock:
            for line in lock:
                match = PIN.match(line.strip())
                if match:
                    pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def installed_versions() -> dict[str, metadata.Distribution]:
    return {canonicalize_name(dist.metadata["Name"]): dist for dist in metadata.distributions()}


def applies(requirement: Requirement, extra: str = "") -> bool:
    if requirement.marker is None:
        return True
    environment = default_environment()
    environment["extra"] = extra
    return requirement.marker.evaluate(environment)


def extra_problems(installed: dict[str, metadata.Distribution]) -> list[str]:
    """Requirements of requested extras that are missing or in a version they do not accept."""
    problems = []
    for name, dist in sorted(installed.items()):
        for line in dist.requires or []:
            wanted = Requirement(line)
            if not wanted.extras or not applies(wanted):
                continue
            target = installed.get(canonicalize_name(wanted.name))
            if target is None:
                continue  # a missing package is pip check's to report
            for extra in sorted(wanted.extras):
                for inner_line in target.requires or []:
                    inner = Requirement(inner_line)
                    if inner.marker is None or not applies(inner, extra) or applies(inner, ""):
                        continue  # not specific to this extra
                    have = installed.get(canonicalize_name(inner.name))
                    if have is None:
                        problems.append(f"{name} asks for {wanted.name}[{extra}], which needs "
                                        f"{inner.name}: not in the lock")
                    elif not inner.specifier.contains(have.version, prereleases=True):
                        problems.append(f"{name} asks for {wanted.name}[{extra}], which needs "
                                        f"{inner}: the lock has {have.version}")
    return problems


def pin_problems(pins: dict[str, str], installed: dict[str, metadata.Distribution]) -> list[str]:
    problems = []
    for name, version in sorted(pins.items()):
        dist = installed.get(name)
        if dist is None:
            problems.append(f"{name}=={version} is locked but not installed")
        elif dist.version != version:
            problems.append(f"{name}=={version} is locked but {dist.version} is installed")
    return problems


def main(paths: list[str]) -> int:
    installed = installed_versions()
    problems = pin_problems(locked_pins(paths), installed) + extra_problems(installed)
    for problem in problems:
        print(f"check_lock: {problem}", file=sys.stderr)
    if not problems:
        print(f"check_lock: {len(installed)} installed packages match {', '.join(paths)}; "
              "every requested extra is covered")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
