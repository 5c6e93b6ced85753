"""Benchmarks of research's train step, input pipeline and loop on this machine, beside PyTorch
twins of its models: `python -m benchmarks` from the repository root (benchmarks/__main__.py).

Outside the installed library (setup.cfg packages research only): it reads configs/ and, with
--torch, imports PyTorch. Importing a module here changes nothing in the process; the program
applies research.platform's settings itself.
"""
