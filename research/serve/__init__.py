"""research/serve"""
