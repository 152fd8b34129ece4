"""The one error type the patch machinery raises."""


class PatchError(Exception):
    """A patch could not be applied or computed; the message says why.

    The apiserver answers it with 400 BadRequest / 422 Invalid.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
