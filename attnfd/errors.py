"""The one error every layer raises for a value that cannot work.

It sits apart from ``attnfd.config`` so that the data sets, the distillers and the path
checks can raise it without importing the config they are themselves imported by.
"""


class ConfigError(ValueError):
    """A config value that cannot work; the message is one line naming the field."""
