"""research/train"""
