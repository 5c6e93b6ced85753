"""research/parallel"""
