"""The project's error types: one place, imported by every layer (it imports nothing of ours)."""


class UserError(Exception):
    """Bad input from the user (a flag, a file, a request): the CLI prints the message alone, no traceback."""


class ConfigError(UserError, ValueError):
    """A config value is wrong; the message names the field and the value."""
