"""Which onnxruntime each platform installs: onnxruntime-gpu publishes wheels for x86-64 Linux and Windows only
(1.31.1: manylinux x86_64 and win_amd64), so elsewhere (macOS, ARM Linux, Windows on ARM) the CPU package must
come instead, or `pip install parley-npc` fails there. Exactly one of the two for every platform."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

PLATFORMS = {  # what Python reports as sys_platform and platform.machine() there
    "Linux x86-64": ("linux", "x86_64", "onnxruntime-gpu"),
    "Windows x64": ("win32", "AMD64", "onnxruntime-gpu"),
    "Windows on ARM": ("win32", "ARM64", "onnxruntime"),
    "Linux ARM": ("linux", "aarch64", "onnxruntime"),
    "macOS Apple silicon": ("darwin", "arm64", "onnxruntime"),
    "FreeBSD": ("freebsd14", "amd64", "onnxruntime"),
    "Cygwin": ("cygwin", "x86_64", "onnxruntime"),
}


def onnxruntime_requirements() -> list[Requirement]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [r for r in map(Requirement, deps) if r.name.startswith("onnxruntime")]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_exactly_one_onnxruntime_is_installed_and_the_one_published_there(platform):
    sys_platform, machine, expected = PLATFORMS[platform]
    env = {"sys_platform": sys_platform, "platform_machine": machine}
    chosen = [r.name for r in onnxruntime_requirements() if r.marker is None or r.marker.evaluate(env)]
    assert chosen == [expected]


def test_both_ask_for_the_same_version():
    assert {str(r.specifier) for r in onnxruntime_requirements()} == {">=1.31"}
