"""Devices: the mesh and the layout of batches and state on it (sharding.py), and the bound on
calls dispatched ahead of the devices that every loop keeps (inflight.py)."""
