"""Test doubles for igwlab's outside world: test code, never shipped (tests/test_packaging.py checks the wheel).

The real parts come first: tests/test_realcluster.py, tests/test_realpicker.py and tests/test_realfaults.py
run igwlab against a real kube-apiserver, etcd, controller-manager, scheduler and kwok (tests/testbin), the
real helm with the real charts, the real endpoint picker and a real Envoy. What is still doubled here, and why:

- `faketools`: fake `k3d`, `docker`, `helm` and `kubectl` executables put first on PATH. They record their
  argv, answer like the real tools (failures and delays included) and keep their state in a directory, so
  igwlab's real subprocess code runs against them.
  * `k3d` and `docker`: there is no container engine where the tests run, so creating, reusing and deleting
    a k3d cluster, mapping its host ports and importing images can only be played. The fakes also inject
    what a real engine produces rarely and on no schedule: Docker down, a port already mapped, a k3d
    version too old for the k3s image.
  * `helm` and `kubectl`: only on the k3d path above (no real API server stands behind a fake k3d), and to
    inject a chart that fails to install or a port-forward that ends; elsewhere the tests use the real helm.
- `fakecluster`: an in-memory `KubeApi` behind the fake k3d: it plays the controllers (CRDs Established,
  Deployments Available, Gateways Programmed, route and pool status). Kept where the fault cannot be made
  on the real cluster: another Kubernetes version than the one testbin builds (tests/test_kubernetes_versions.py),
  a gateway controller rejecting a Gateway with its own message, and status the stand-in controller does not
  write.
- `world`: a whole fake world for `up` from the doubles above, with a real simulator on the lab's host port.

Used by the tests and by benchmarks/bench_up.py (orchestration overhead without any cluster).
"""
