"""The only package that touches the outside world (k3d, helm, the Kubernetes API, HTTP).

Functions here that only *build* commands are pure, so `plan` can show exactly what `up` runs.
"""
