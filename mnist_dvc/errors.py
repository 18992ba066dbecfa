"""The one error type the project raises for problems a user can fix."""


class MnistError(Exception):
    """A bad input or environment: the message is one line naming the problem and the fix."""
