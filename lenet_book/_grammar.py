"""Words for messages: a value's kind with its article ("an int", "a list")."""


def _kind(value):
    return type(value).__name__


def _a(word):
    """``word`` with its article: "an int", "a list", "an ndarray"."""
    vowel = word[:1].lower() in "aeiou" and not word.lower().startswith(("uni", "use", "eu"))
    return f"{'an' if vowel else 'a'} {word}"


def _a_kind(value):
    """The kind of ``value`` with its article, for a message: "an int", "a str"."""
    return _a(_kind(value))
