"""The control plane's certificates and kubeconfigs, issued by :mod:`tests.support.pki`."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from tests.support.pki import CertificateAuthority, KeyPair, signing_keys


def write_cluster_pki(ca: CertificateAuthority, directory: Path) -> KeyPair:
    """Write the files kube-apiserver is started with into ``directory``; return the admin
    client pair (``system:masters``), also written as ``admin.crt``/``admin.key``.

    ``ca.crt`` and ``apiserver.*`` (serving, for every name of the ``kubernetes`` Service);
    ``apiserver-kubelet-client.*``; ``front-proxy-ca.crt`` and ``front-proxy-client.*`` from a
    second CA, never the cluster
    CA (control-plane.md §3); ``sa.key``/``sa.pub`` to sign ServiceAccount tokens.
    """
    front_proxy_ca = CertificateAuthority("front-proxy-ca")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca.pem)
    (directory / "front-proxy-ca.crt").write_bytes(front_proxy_ca.pem)
    # 10.0.0.1: the `kubernetes` Service's ClusterIP, which pods on the node dial (node.py).
    hosts = ["127.0.0.1", "10.0.0.1", "localhost", "kubernetes", "kubernetes.default"]
    hosts += ["kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    ca.issue("kube-apiserver", hosts=hosts, usage="server").write(directory, "apiserver")
    front_proxy_ca.issue("front-proxy-client").write(directory, "front-proxy-client")
    # How kube-apiserver authenticates to a kubelet (logs, exec), as kubeadm's pair does.
    kubelet_client = ca.issue("kube-apiserver-kubelet-client", organizations=["system:masters"])
    kubelet_client.write(directory, "apiserver-kubelet-client")
    sa_key, sa_pub = signing_keys()
    (directory / "sa.key").write_bytes(sa_key)
    (directory / "sa.pub").write_bytes(sa_pub)
    admin = ca.issue("admin", organizations=["system:masters"])
    admin.write(directory, "admin")
    return admin


def write_kubeconfig(path: Path, server: str, ca_pem: bytes, user: KeyPair) -> None:
    """A kubeconfig (mode 0600) for ``server`` that presents ``user``'s client certificate."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "metrics-adapter",
                "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": "user",
                "user": {
                    "client-certificate-data": b64(user.cert_pem),
                    "client-key-data": b64(user.key_pem),
                },
            }
        ],
        "contexts": [
            {
                "name": "metrics-adapter",
                "context": {"cluster": "metrics-adapter", "user": "user"},
            }
        ],
        "current-context": "metrics-adapter",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def serving_pair(service: str, namespace: str, ca: CertificateAuthority) -> KeyPair:
    """A serving certificate the aggregator accepts for Service ``namespace/service``.

    The aggregator checks exactly ``<service>.<namespace>.svc`` against the APIService's
    caBundle (control-plane.md §4); localhost and 127.0.0.1 are there for direct callers.
    """
    hosts = [f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]
    return ca.issue(service, hosts=[*hosts, "localhost", "127.0.0.1"], usage="server")
