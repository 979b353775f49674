"""A real node for the control plane: kube-scheduler, and a kubelet on containerd (runc) whose
pods live in a network namespace this module creates.

The layout, for slot ``N`` (the first free of :data:`SLOTS`, so two clusters can coexist)::

    host netns                               netns ma-nodeN (containerd runs here)
    kube-apiserver 127.0.0.1:<port>          eth0 10.77.N.2/30 --- cni0 10.78.N.1/24 --- pods
    kubelet  (--node-ip 10.77.N.1)           PREROUTING: 10.0.0.1:443 -> 10.77.N.1:443
    socat 10.77.N.1:443 -> 127.0.0.1:<port>
    ma-nodeN 10.77.N.1/30, route 10.78.N.0/24 via 10.77.N.2

Pods reach the API as in any cluster, through the ``kubernetes`` Service's ClusterIP (there is
no kube-proxy: one DNAT rule inside the namespace and a relay to loopback stand in for it).
The aggregator reaches pods by their IPs (``--enable-aggregator-routing``), and the kubelet
probes them, over the route into the namespace. No traffic leaves loopback and the namespaces
created here. Nothing is pulled: the pause image and every image a test needs are imported
into containerd (:meth:`Node.load_image`).

Every path and name a node leaves behind is derived from the state directory and the slot
recorded in it, so :func:`teardown` can clean up after a crashed run (``make cluster-down``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tests.support.controlplane.binaries import BIN_DIR, REPO
from tests.support.controlplane.errors import ControlPlaneError
from tests.support.controlplane.pki import write_kubeconfig
from tests.support.controlplane.processes import Process, wait_for

if TYPE_CHECKING:
    from tests.support.controlplane.cluster import ControlPlane

BUILD_SCRIPT = REPO / "hack" / "build-node.sh"
NODE_NAME = "node-1"
PAUSE_IMAGE = "localhost/pause:3.10"
NODE_PROCESSES = ("kubelet", "kube-scheduler", "containerd", "apiserver-relay")
"""The node's processes, in the order they stop (the reverse of their start)."""
SLOTS = range(16)
KUBERNETES_SERVICE_IP = "10.0.0.1"
"""The first address of the apiserver's ``--service-cluster-ip-range``: the ``kubernetes``
Service, whose address the kubelet hands every pod as ``KUBERNETES_SERVICE_HOST``."""
CTR_TIMEOUT = 120.0
"""A guard on one ``ctr`` call; importing the adapter's image (340 MB) took 6 s here."""


def _run(*argv: str, timeout: float = 30, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise ControlPlaneError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


@dataclass(frozen=True)
class Network:
    """The names and addresses of slot ``slot``."""

    slot: int

    @property
    def netns(self) -> str:
        return f"ma-node{self.slot}"

    @property
    def host_ip(self) -> str:
        return f"10.77.{self.slot}.1"

    @property
    def inner_ip(self) -> str:
        return f"10.77.{self.slot}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.78.{self.slot}.0/24"

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.netns}"

    @property
    def cgroup_root(self) -> str:
        """The kubelet's ``cgroupRoot``: its pods' cgroups stay under a tree of their own."""
        return f"/{self.netns}"

    @classmethod
    def create(cls, state: Path) -> Network:
        """Take the first free slot (``ip netns add`` is the atomic claim) and wire it."""
        for slot in SLOTS:
            net = cls(slot)
            if subprocess.run(["ip", "netns", "add", net.netns], capture_output=True).returncode:
                continue
            (state / "node").mkdir(parents=True, exist_ok=True)
            (state / "node" / "slot").write_text(f"{slot}\n")
            net._wire()
            return net
        raise ControlPlaneError(f"no free node slot: netns ma-node{SLOTS[0]}..{SLOTS[-1]} exist")

    def _wire(self) -> None:
        ns, host = self.netns, self.netns
        inside = ("ip", "-n", ns)
        _run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", host)
        _run("ip", "link", "set", host, "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*inside, "addr", "add", f"{self.inner_ip}/30", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "route", "add", "default", "via", self.host_ip)
        _run("ip", "route", "add", self.pod_cidr, "via", self.inner_ip)
        enter = ("nsenter", f"--net={self.netns_path}")
        _run(*enter, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        _run(
            *enter,
            "iptables",
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-d",
            f"{KUBERNETES_SERVICE_IP}/32",
            "-p",
            "tcp",
            "--dport",
            "443",
            "-j",
            "DNAT",
            "--to-destination",
            f"{self.host_ip}:443",
        )

    def cni_config(self, data_dir: Path) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "pods",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(data_dir),
                        "ranges": [[{"subnet": self.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "loopback"},
            ],
        }


@dataclass
class Node:
    """containerd, kube-scheduler and the kubelet of ``cp``'s state directory."""

    cp: ControlPlane
    network: Network | None = None
    processes: list[Process] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def dir(self) -> Path:
        return self.cp.state / "node"

    @property
    def socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def start(self, timeout: float) -> Node:
        began = time.monotonic()
        bin_dir, pause_archive = _build()
        t = self._mark("node binaries", began)
        self.network = net = Network.create(self.cp.state)
        t = self._mark("network", t)
        relay = Process(
            "apiserver-relay",
            [
                shutil.which("socat") or "socat",
                f"TCP-LISTEN:443,bind={net.host_ip},fork,reuseaddr",
                f"TCP:127.0.0.1:{self.cp.url.rsplit(':', 1)[1]}",
            ],
            self.cp.state,
        )
        self._add(relay)
        self._add(
            Process(
                "containerd",
                [shutil.which("containerd") or "containerd", "--config", str(self._config())],
                self.cp.state,
                enter=["nsenter", f"--net={net.netns_path}"],
            )
        )
        wait_for("containerd's socket", self._containerd_up, timeout)
        self.import_archive(pause_archive)
        t = self._mark("containerd", t)
        self._add(Process("kube-scheduler", self._scheduler_argv(bin_dir), self.cp.state))
        self._add(Process("kubelet", self._kubelet_argv(bin_dir), self.cp.state))
        wait_for(f"Node {NODE_NAME} Ready", self._ready, timeout, 0.5)
        self._mark("kubelet", t)
        return self

    def _mark(self, phase: str, since: float) -> float:
        now = time.monotonic()
        self.timings[phase] = round(now - since, 2)
        return now

    def _add(self, process: Process) -> None:
        self.processes.append(process.start(detach=self.cp.detach))

    def _containerd_up(self) -> bool:
        self.processes[-1].check()
        # ctr failing (ControlPlaneError) is retried by wait_for until the deadline.
        return self.socket.is_socket() and bool(_run(*self._ctr("version")))

    def _ready(self) -> bool:
        for process in self.processes:
            process.check()
        node = self.cp.get("v1", "Node", NODE_NAME)
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # Configuration.

    def _config(self) -> Path:
        """containerd's config: CRI with runc, our CNI config, the local pause image."""
        assert self.network is not None
        d = self.dir
        cni = d / "net.d"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-pods.conflist").write_text(
            json.dumps(self.network.cni_config(d / "cni-ipam"), indent=1)
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        runc = f"{cri}.containerd.runtimes.runc"
        config = f"""version = 2
root = "{d / "containerd" / "root"}"
state = "{d / "containerd" / "state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{self.socket}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  netns_mounts_under_state_dir = true
  # Root here lacks CAP_SYS_RESOURCE: runc's "failed to update /proc/self/oom_score_adj:
  # Permission denied" for the -998 the kubelet asks for a sandbox. Clamped to ours instead.
  restrict_oom_score_adj = true
[{cri}.containerd]
  default_runtime_name = "runc"
[{runc}]
  runtime_type = "io.containerd.runc.v2"
[{runc}.options]
  BinaryName = "{shutil.which("runc") or "runc"}"
  Root = "{d / "runc"}"
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni}"
"""
        path = d / "containerd.toml"
        path.write_text(config)
        return path

    def _scheduler_argv(self, bin_dir: Path) -> list[str]:
        kubeconfig = self.dir / "kube-scheduler.kubeconfig"
        user = self.cp.ca.issue("system:kube-scheduler")
        write_kubeconfig(kubeconfig, self.cp.url, self.cp.ca.pem, user)
        return [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
        ]

    def _kubelet_argv(self, bin_dir: Path) -> list[str]:
        assert self.network is not None
        d = self.dir
        kubeconfig = d / "kubelet.kubeconfig"
        user = self.cp.ca.issue(f"system:node:{NODE_NAME}", organizations=["system:nodes"])
        write_kubeconfig(kubeconfig, self.cp.url, self.cp.ca.pem, user)
        (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")  # no DNS, and none outside
        for controller in _cgroup_hierarchies():
            (controller / self.network.cgroup_root.lstrip("/")).mkdir(exist_ok=True)
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.network.host_ip,
            "readOnlyPort": 0,
            "healthzPort": 0,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.cp.pki / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            # Debian's VM mounts cgroup v1 controllers; 1.31+ refuses them unless told.
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": self.network.cgroup_root,
            "enforceNodeAllocatable": [],
            "failSwapOn": False,
            "oomScoreAdj": 0,  # -999 by default, which needs CAP_SYS_RESOURCE (see containerd)
            "protectKernelDefaults": False,
            "resolvConf": str(d / "resolv.conf"),
            "podLogsDir": str(d / "pod-logs"),
            "registerNode": True,
            # A test machine's disk may be nearly full; evicting pods would only confuse.
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "maxPods": 30,
            "nodeStatusUpdateFrequency": "2s",
            "syncFrequency": "10s",
            "fileCheckFrequency": "5s",
        }
        config_path = d / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(config))
        return [
            str(bin_dir / "kubelet"),
            f"--config={config_path}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={d / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.network.host_ip}",
        ]

    # Images.

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args]

    def import_archive(self, archive: Path) -> None:
        _run(*self._ctr("images", "import", str(archive)), timeout=CTR_TIMEOUT)

    def load_image(self, reference: str) -> None:
        """Import ``reference`` from Podman's storage (where hack/build-image.sh builds it)."""
        with tempfile.TemporaryDirectory(prefix="image-") as tmp:
            archive = Path(tmp) / "image.tar"
            _run(
                "podman",
                "save",
                "--format",
                "docker-archive",
                "-o",
                str(archive),
                reference,
                timeout=CTR_TIMEOUT,
            )
            self.import_archive(archive)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.name == "containerd":
                _kill_pods(self.cp.state)
            process.stop()
        self.processes.clear()
        teardown(self.cp.state)


NEEDS = (
    "root, iproute2 and Go >= 1.24 with the Go module proxy (hack/build-node.sh builds the "
    "kubelet and installs containerd, runc, containernetworking-plugins, iptables and socat "
    "from Debian's packages)"
)


def can_run() -> bool:
    """Root with ``ip``, and the kubelet cached or Go to build it (the rest is installed)."""
    built = os.access(BIN_DIR / "kubelet", os.X_OK)
    return (
        os.geteuid() == 0
        and shutil.which("ip") is not None
        and (built or shutil.which("go") is not None)
    )


def _build() -> tuple[Path, Path]:
    done = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False
    )
    if done.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed:\n{done.stderr[-4000:]}")
    bin_dir, archive = done.stdout.split()
    return Path(bin_dir), Path(archive)


def _cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy: each v1 one and, on hybrid hosts, ``unified`` too (the
    kubelet uses v1 there, but runc also places containers in the v2 tree); or the single v2
    hierarchy of a host that has only v2."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return [root]
    return [p for p in root.iterdir() if not p.is_symlink() and (p / "cgroup.procs").exists()]


def _kill_pods(state: Path, timeout: float = 10.0) -> None:
    """SIGKILL every container of the node and its shim, and wait (at most ``timeout``) until
    they are gone, so their cgroups can be removed: stopping the kubelet and containerd leaves
    both running (they outlive their managers by design)."""
    slot = _slot(state)
    if slot is None:
        return
    cgroup = Network(slot).cgroup_root.lstrip("/")
    pids: set[int] = set()
    for hierarchy in _cgroup_hierarchies():
        for procs in (hierarchy / cgroup).rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(p) for p in procs.read_text().split())
    pids |= _shims(state)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def _slot(state: Path) -> int | None:
    try:
        return int((state / "node" / "slot").read_text())
    except (OSError, ValueError):
        return None


def teardown(state: Path) -> None:
    """Undo what a node of ``state`` left behind, once its processes are stopped: its pods and
    shims, the mounts under ``state``, its cgroups, its network namespace (which takes the
    veth pair and the host's route with it) and the kubelet's links in /var/log/containers."""
    _kill_pods(state)
    for mount in reversed(_mounts_under(state)):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    slot = _slot(state)
    if slot is not None:
        net = Network(slot)
        for controller in _cgroup_hierarchies():
            top = controller / net.cgroup_root.lstrip("/")
            if top.is_dir():
                below = [p for p in top.rglob("*") if p.is_dir()]
                for cgroup in sorted(below, key=lambda p: -len(p.parts)):
                    with contextlib.suppress(OSError):
                        cgroup.rmdir()
                with contextlib.suppress(OSError):
                    top.rmdir()
        subprocess.run(["ip", "netns", "delete", net.netns], capture_output=True, check=False)
        (state / "node" / "slot").unlink(missing_ok=True)
    logs = Path("/var/log/containers")
    if logs.is_dir():
        for link in logs.iterdir():
            with contextlib.suppress(OSError):
                if link.is_symlink() and str(state) in os.readlink(link):
                    link.unlink()


def leftovers(state: Path, network: Network) -> list[str]:
    """What a node of ``state`` on ``network`` still holds: its network namespace, cgroups,
    mounts and containerd shims (empty once :func:`teardown` has run)."""
    found = [f"netns {network.netns}"] if Path(network.netns_path).exists() else []
    # Every directory of that name in any tree, independently of what teardown() removes.
    name = network.cgroup_root.lstrip("/")
    root = Path("/sys/fs/cgroup")
    found += [str(p) for p in [root / name, *root.glob(f"*/{name}")] if p.is_dir()]
    found += [f"mount {m}" for m in _mounts_under(state)]
    found += [f"shim pid {pid}" for pid in sorted(_shims(state))]
    return found


def _shims(state: Path) -> set[int]:
    """The containerd shims of ``state``'s containerd (``-address <its socket>``)."""
    socket = str(state / "node" / "containerd" / "containerd.sock").encode()
    found = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                if b"containerd-shim" in argv[0] and socket in argv:
                    found.add(int(proc.name))
    return found


def _mounts_under(state: Path) -> list[str]:
    prefix = str(state.resolve()) + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point.startswith(prefix):
            found.append(point)
    return found
