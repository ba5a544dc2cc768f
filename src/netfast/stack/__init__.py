"""The host stack layer: wires the sans-IO cores (IP, TCP, UDP) to links for one host.

The router's composition and drivers are a package of their own, :mod:`netfast.router`.
"""
