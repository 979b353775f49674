"""KEDA itself beside metrics-adapter, on the same loopback control plane and the same work:
``make bench-keda`` (``python -m bench keda``). Never part of ``make test`` or CI: KEDA is
built cold once by ``hack/build-keda.sh``, several minutes.

- :mod:`.systems`: each system installed as its release installs it (CRDs, RBAC, a
  ServiceAccount, the APIService with its own certificates) on a fresh control plane, and the
  processes whose memory and CPU are its footprint;
- :mod:`.scenarios`: the work both systems get, the same ScaledObject YAML for both, and what
  is measured of each;
- :mod:`.run`: every scenario on KEDA, then on metrics-adapter; one table, a line a figure.
"""
