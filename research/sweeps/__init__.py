"""research/sweeps"""
