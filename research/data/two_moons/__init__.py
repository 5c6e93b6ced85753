from research.data.two_moons.builder import TwoMoons  # noqa: F401
