"""The error a user can cause and fix: the programs print its message as one line and exit 1."""


class UserError(Exception):
    """Bad input (config, dataset, workdir, checkpoint); the message says how to fix it."""
