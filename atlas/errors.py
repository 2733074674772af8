"""The base of every error Atlas raises for its user: the CLI prints its message without a traceback.

Config and data problems (ConfigError, DataError) exit with code 2; run-time failures the message
explains (no finite steps, a checkpoint that cannot be saved or read, out of memory at micro-batch 1)
exit with code 1.
"""


class AtlasError(Exception):
    """An error whose message tells the user what happened and what to do."""
