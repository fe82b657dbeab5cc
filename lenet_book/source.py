"""Showing in a chapter the code it teaches, from where it lives in ``lenet_book``.

Like d2l's ``#@save`` functions, the book's helpers live in one package, and the chapter that
explains one shows its source: ``show(train)`` displays it as highlighted Python in the book and
as plain text elsewhere, so that nbval also checks that the chapter shows the current code.
"""

from __future__ import annotations

import inspect

from lenet_book._grammar import _a_kind


def _source(obj):
    """``inspect.getsource(obj)``, or a TypeError saying why there is none to show."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):  # inspect's own words call an exec'd class built in
        name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
        raise TypeError(f"show cannot find the source of {name}: it is built into Python "
                        "(written in C) or was made without a file (by exec or eval, or typed "
                        "at the interactive prompt); show displays the functions and classes "
                        "of a .py file or a notebook cell, e.g. show(train)") from None


def _unwrapped(obj):
    """A decorated function (functools.lru_cache, cache, or any wrapper that sets __wrapped__)
    as the function it wraps, whose source shows the decorator, as inspect.getsource reads it;
    a property as its getter."""
    if isinstance(obj, property) and obj.fget is not None:
        return obj.fget
    if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)
            or inspect.ismodule(obj)) and callable(obj) and hasattr(obj, "__wrapped__"):
        try:
            return inspect.unwrap(obj)
        except ValueError:  # a cycle of __wrapped__: refused below as what it is
            return obj
    return obj


class Source:
    """The source of some functions or classes, displayed as a Python code block."""

    def __init__(self, *objects):
        if not objects:
            raise TypeError("show takes the functions or classes to display, e.g. show(train); "
                            "it was given none")
        objects = [_unwrapped(obj) for obj in objects]
        for obj in objects:
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)
                    or inspect.ismodule(obj)):
                named = (f"the text {obj!r}" if isinstance(obj, str)
                         else f"{_a_kind(obj)}")
                raise TypeError(f"show takes functions or classes themselves, e.g. show(train) "
                                f"after from lenet_book.train import train, got {named}")
        self.text = "\n\n".join(_source(obj).rstrip() for obj in objects)

    def __repr__(self):
        return self.text

    def _repr_markdown_(self):
        return f"```python\n{self.text}\n```"


def show(*objects):
    """Display the source of ``objects`` (for use as the last line of a chapter's cell)."""
    return Source(*objects)
