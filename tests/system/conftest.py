"""System tests: real libvirtd, QEMU and guests, each lab in a network namespace.

They need root (namespaces, a private libvirtd) and Debian's libvirt, QEMU and
mmdebstrap (`make system-deps` installs them). Images come from the image
cache (NESTLAB_CACHE, default /var/cache/nestlab) and are built when missing.
Every namespace and process a test starts is stopped by the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.system


@pytest.fixture(scope="session", autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.fail("the system tests need root (network namespaces, a private libvirtd)")


@pytest.fixture(scope="session")
def nestlab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nestlab-home")


@pytest.fixture(scope="session")
def env(nestlab_home: Path) -> dict[str, str]:
    return {**os.environ, "NESTLAB_HOME": str(nestlab_home)}


class Nestlab:
    """Runs the nestlab CLI as a user would, in a separate process."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "nestlab", *args]

    def __call__(self, *args: str, timeout: float = 1200,
                 netns: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args)
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        return subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def ok(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        result = self(*args, **kwargs)  # type: ignore[arg-type]
        assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n" \
                                       f"{result.stderr}"
        return result


@pytest.fixture(scope="session")
def nestlab(env: dict[str, str]) -> Nestlab:
    return Nestlab(env)


@pytest.fixture(scope="session")
def images(nestlab: Nestlab) -> Iterator[None]:
    """Build (or find) the two images once for the session; prints how long each took."""
    for name in ("debian-12", "prime"):
        result = nestlab.ok("image", "build", name, timeout=1800)
        print(result.stdout.strip())
    yield
