"""A toy TFDS dataset for tests/test_extension.py: added the way the README says to add one."""
