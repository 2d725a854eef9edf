"""The one error type llmcore raises for bad input.

Every user-facing entry point (CLI, notebook helper, dashboard widget) turns bad
input into a `UserError` whose message is one line that says what went wrong and
what to do. Anything else escaping the library is a bug.
"""


class UserError(ValueError):
    """Bad input from a user: a wrong file, an impossible setting, an empty prompt."""
