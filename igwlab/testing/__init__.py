"""Test doubles for igwlab's outside world, kept apart from the real implementations.

- `faketools`: fake `k3d`, `helm`, `docker` and `kubectl` executables to put first on PATH. They
  record their argv, answer like the real tools (failures and delays included) and keep their
  state in a directory, so the real subprocess code runs against them.
- `fakecluster`: an in-memory `KubeApi` that plays the controllers (CRDs Established, Deployments
  Available, Gateways Programmed, route and pool status) and sees the releases the fake helm
  installed.

Used by the tests and by benchmarks/bench_up.py; never by igwlab's commands.
"""
