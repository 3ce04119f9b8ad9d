"""Worker hosts as Linux network namespaces, each reaching the test machine over a veth pair
whose link the test can cut and heal. Needs root and iproute2's `ip`."""

from __future__ import annotations

import os
import shutil
import subprocess


def why_not_available() -> str | None:
    """None if network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command: apt-get install -y iproute2"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Host:
    """One namespace, linked to the machine by a veth pair on its own /24."""

    def __init__(self, tag: str, n: int, net: int) -> None:
        self.name = f"fx{tag}h{n}"
        self.outer = f"fx{tag}v{n}"  # at most 15 characters, the kernel's limit
        self.inner = f"fx{tag}i{n}"
        self.gateway = f"10.{net}.{n}.1"
        """The machine's address as this host sees it."""
        self.address = f"10.{net}.{n}.2"

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def create(self) -> None:
        _ip("netns", "add", self.name)
        _ip("link", "add", self.outer, "type", "veth", "peer", "name", self.inner)
        _ip("link", "set", self.inner, "netns", self.name)
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.outer)
        _ip("link", "set", self.outer, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.inner)
        _ip("-n", self.name, "link", "set", self.inner, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def cut(self) -> None:
        """Packets stop both ways; open TCP connections hang, nothing is reset."""
        _ip("link", "set", self.outer, "down")

    def heal(self) -> None:
        _ip("link", "set", self.outer, "up")

    def remove(self) -> None:
        for args in (("netns", "del", self.name), ("link", "del", self.outer)):
            subprocess.run(["ip", *args], check=False, capture_output=True)


def make_hosts(count: int) -> list[Host]:
    """`count` hosts named and numbered after this process, so concurrent runs do not meet."""
    pid = os.getpid()
    tag = f"{pid % 10_000:04d}"
    net = 100 + pid % 100
    return [Host(tag, n, net) for n in range(1, count + 1)]
