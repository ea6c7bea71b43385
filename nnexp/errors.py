"""User-facing errors.

Every problem a user can cause (a bad override, a wrong type, a missing or corrupt data file)
is raised as a subclass of :class:`NnexpError`. The command line prints these as one line,
``nnexp: error: <message>``, and exits non-zero; anything else is a bug and keeps its traceback.

This module imports the standard library only, so any layer may use it.
"""


class NnexpError(Exception):
    """Base class: the message alone must tell the user what is wrong and how to fix it."""


class ConfigError(NnexpError, ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(NnexpError):
    """A data set is unknown, missing, corrupt or cannot be fetched."""


class TrackingError(NnexpError):
    """The MLflow store cannot be opened or written."""


def one_line(error: BaseException) -> str:
    """A one-line description of ``error`` and its first cause.

    Hydra's and OmegaConf's messages span several lines (the options of a group one per line,
    ``full_key:`` and ``object_type=`` details); they are folded into one.
    """
    lines = [line.strip() for line in str(error).splitlines()]
    text = " ".join(line for line in lines
                    if line and not line.startswith(("full_key:", "object_type=", "reference_type=")))
    text = text.replace(" Available options in", "; available options in")
    text = text.split(" Config search path:")[0]  # Hydra's search path: noise to a user
    override = getattr(error, "override", None)  # Hydra's OverrideParseException names it
    if isinstance(override, str) and override not in text:
        text = f"cannot parse the override {override!r}: {text}"
    # ``raise ... from None`` says the context is noise: respect it
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if cause is not None and str(cause).strip():
        first = str(cause).strip().splitlines()[0]
        if first not in text:
            text = f"{text} ({first})"
    return text or type(error).__name__


def interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM / SIGHUP turned interrupt) that ``error`` hides, else None.

    A signal that arrives inside a library's ``try``/``finally`` can make the clean-up fail on
    the half-built state it left: OmegaConf's ``flag_override`` then raises ``AttributeError``
    during the interrupt, and Hydra wraps that in ``ConfigCompositionException``. The interrupt
    survives as a ``__context__`` or ``__cause__`` further down the chain, even where
    ``raise ... from`` hid it from the traceback.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        link = pending.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        if isinstance(link, KeyboardInterrupt):
            return link
        pending += [link.__cause__, link.__context__]
    return None


def raise_hidden_interrupt(error: BaseException) -> None:
    """Raise the interrupt ``error`` hides (:func:`interrupt_behind`), if any.

    For the places that catch ``Exception`` to carry on without something optional (a figure,
    the model helper): without this, a Ctrl-C that arrived in there as, say, the ``RuntimeError``
    Python makes of an error in ``__set_name__`` (while Pillow was imported) became a warning,
    and the run went on to finish as if nobody had pressed it.
    """
    interrupt = interrupt_behind(error)
    if interrupt is not None:
        raise interrupt from error
