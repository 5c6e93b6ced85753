"""Sweeps declared in config files: expansion and local launching (launch.py), Ray
(ray_backend.py), vectorized groups trained in one vmapped step through the training loop
(vectorized.py), the summary tables and plots (report.py), and rerunning a finished run to
check it reproduces (reproduce.py)."""
