"""Hosts as Linux network namespaces on a bridge of the test's own: links to cut, processes to kill, cleanup."""

import contextlib
import os
import signal
import subprocess

import pytest

from support import wait_until

PREFIX = "dlt-"  # every namespace and link the harness makes; leftovers of a crashed run are found by it
BRIDGE = f"{PREFIX}br0"
SUBNET = "10.213.77"  # a private /24 on the test's own links only: no default route, nothing else reached
NETWORK = f"{SUBNET}.0/24"
GATEWAY = f"{SUBNET}.1"  # the root namespace's address on the bridge: Redis, PostgreSQL and the origin
REQUIRE_NETNS = os.environ.get("REQUIRE_NETNS") == "1"


def ip(*arguments, check=True):
    return subprocess.run(["ip", *arguments], check=check, capture_output=True, text=True, timeout=30)


def _kill_namespace_processes(namespace):
    for pid in ip("netns", "pids", namespace, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):  # gone meanwhile
            os.kill(int(pid), signal.SIGKILL)


def remove_leftovers():
    """Delete every namespace and link named PREFIX…, killing the processes inside first."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        namespace = line.split()[0] if line.strip() else ""
        if namespace.startswith(PREFIX):
            _kill_namespace_processes(namespace)
            ip("netns", "del", namespace, check=False)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(PREFIX):
            ip("link", "del", name, check=False)


def require_netns():
    """Skip unless `ip netns add` works here; fail instead when CI sets REQUIRE_NETNS=1."""
    probe = f"{PREFIX}probe"
    try:
        ip("netns", "add", probe)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        if REQUIRE_NETNS:
            pytest.fail(f"ip netns add is not permitted ({detail}) and REQUIRE_NETNS=1")
        pytest.skip(f"ip netns add is not permitted here: {detail} (CI sets REQUIRE_NETNS=1)")
    ip("netns", "del", probe, check=False)


class Host:
    """A network namespace with one veth to the bridge; its processes run through `ip netns exec`."""

    def __init__(self, name, last_octet):
        self.name = name
        self.namespace = f"{PREFIX}{name}"
        self.address = f"{SUBNET}.{last_octet}"
        self.link = f"{PREFIX}{name}-r"  # the root end, on the bridge: down cuts the host off
        self.inside = f"{PREFIX}{name}-n"

    def create(self):
        ip("netns", "add", self.namespace)
        ip("link", "add", self.link, "type", "veth", "peer", "name", self.inside, "netns", self.namespace)
        ip("link", "set", self.link, "master", BRIDGE, "up")
        ns = ("-n", self.namespace)
        ip(*ns, "link", "set", "lo", "up")
        ip(*ns, "addr", "add", f"{self.address}/24", "dev", self.inside)
        ip(*ns, "link", "set", self.inside, "up")

    def command(self, command):
        return ["ip", "netns", "exec", self.namespace, *command]

    def pids(self):
        return [int(pid) for pid in ip("netns", "pids", self.namespace, check=False).stdout.split()]

    def kill_all(self):
        """SIGKILL to every process in the namespace: the host crashes."""
        _kill_namespace_processes(self.namespace)
        wait_until(lambda: not self.pids(), timeout=10, message=f"{self.namespace}'s processes gone")

    def cut(self):
        ip("link", "set", self.link, "down")

    def restore(self):
        """The link up again, and the host's neighbour entries that failed meanwhile forgotten, so
        its next connection resolves the gateway afresh instead of answering "No route to host"."""
        ip("link", "set", self.link, "up")
        wait_until(self._forwarding, timeout=10, message=f"{self.link} forwarding")
        ip("-n", self.namespace, "neigh", "flush", "dev", self.inside)

    def _forwarding(self):
        """The bridge forwards on the root end, and the host's end has its carrier back."""
        port = subprocess.run(["bridge", "link", "show", "dev", self.link], capture_output=True, text=True, timeout=30)
        inside = ip("-n", self.namespace, "link", "show", self.inside).stdout
        return "state forwarding" in port.stdout and "LOWER_UP" in inside


class Network:
    """The bridge with GATEWAY and one Host per (name, last octet); use it in `with`."""

    def __init__(self, **hosts):
        self.hosts = {name: Host(name, octet) for name, octet in hosts.items()}

    def __enter__(self):
        remove_leftovers()
        try:
            ip("link", "add", BRIDGE, "type", "bridge")
            ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
            ip("link", "set", BRIDGE, "up")
            for host in self.hosts.values():
                host.create()
        except BaseException:
            remove_leftovers()
            raise
        return self

    def __getitem__(self, name):
        return self.hosts[name]

    def __exit__(self, *exc_info):
        remove_leftovers()
