"""The locked dependency set agrees with pyproject.toml's ranges and is what is installed."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", re.MULTILINE)


def pins(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text()
    return {canonicalize_name(package): pinned for package, pinned in PIN.findall(text)}


def ranges(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = list(project["dependencies"])
    for extra in extras:
        listed += project["optional-dependencies"][extra]
    return [Requirement(item) for item in listed]


def test_every_dependency_is_locked_within_its_range() -> None:
    for lock, extras in (("prod.txt", ()), ("dev.txt", ("dev",)), ("bench.txt", ("dev", "bench"))):
        locked = pins(lock)
        for requirement in ranges(*extras):
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{requirement.name} is not pinned in requirements/{lock}"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"requirements/{lock} pins {name}=={locked[name]}, outside {requirement}"
            )


def test_the_three_locks_agree() -> None:
    prod, dev, bench = pins("prod.txt"), pins("dev.txt"), pins("bench.txt")
    assert {name: dev[name] for name in prod} == prod
    assert {name: bench[name] for name in dev} == dev


def test_what_is_installed_is_what_is_locked() -> None:
    # The suite tests the locked set, as CI and the Dockerfile install it (`make`).
    for name, pinned in pins("dev.txt").items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a package for another platform or Python (its marker says which)
        assert installed == pinned, f"{name} {installed} is installed; the lock says {pinned}"
