"""Pipeline parameters in jwst's forms: strun arguments and ASDF parameter files.

Both become one nested dict ``{"pipeline": {...}, "steps": {step: {param: value}}}``
with the step and parameter names of jwst (``rejection_threshold``,
``override_dark``, ...).
"""

from pathlib import Path

from detflow.errors import ParameterError
from detflow.registry import STEP_BY_CLASS, STEPS


def parse_value(text):
    """Turn a command-line string into a Python value as strun/configobj would.

    ``"6"`` -> 6, ``"4.5"`` -> 4.5, ``"true"``/``"False"`` -> bool, ``"none"`` -> None,
    anything else stays a string (paths, ``N/A``).
    """
    if not isinstance(text, str):
        return text
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_step_args(args, own=None):
    """Parse ``--steps.STEP.PARAM=VALUE`` items (and ``--steps.STEP.PARAM VALUE``), and,
    as strun does, ``--PARAM=VALUE`` items for the pipeline's (or the one step's) own
    parameters.

    Parameters
    ----------
    args : list of str
        The leftover command-line words.
    own : collection of str, optional
        The names ``--PARAM=VALUE`` may set (e.g. ``save_calibrated_ramp``); with None,
        only ``--steps.`` items are accepted.

    Returns
    -------
    dict
        ``{step: {param: value}}``; the ``--PARAM=VALUE`` items under the key None.

    Raises
    ------
    ParameterError
        For an unknown step or parameter, a malformed item, or leftover words.
    """
    steps = {}
    i = 0
    while i < len(args):
        word = args[i]
        if not word.startswith("--steps."):
            i = _parse_own(args, i, own, steps)
            continue
        if "=" in word:
            key, value = word[2:].split("=", 1)
        else:
            if i + 1 >= len(args):
                raise ParameterError(f"{word} needs a value (use {word}=VALUE)")
            key, value = word[2:], args[i + 1]
            i += 1
        parts = key.split(".")
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise ParameterError(f"malformed step parameter {word!r}; use --steps.STEP.PARAM=VALUE")
        _, step, param = parts
        if step not in STEPS:
            raise ParameterError(
                f"unknown step {step!r} in {word!r}; detector1 steps are: {', '.join(STEPS)}"
            )
        steps.setdefault(step, {})[param] = parse_value(value)
        i += 1
    return steps


def _parse_own(args, i, own, out):
    """One ``--PARAM=VALUE`` (or ``--PARAM VALUE``) item at ``args[i]`` into
    ``out[None]``; returns the index after it."""
    word = args[i]
    if own is None or not word.startswith("--") or len(word) < 3:
        raise ParameterError(f"unrecognised argument {word!r}")
    if "=" in word:
        name, value = word[2:].split("=", 1)
        step = 1
    else:
        if i + 1 >= len(args):
            raise ParameterError(f"{word} needs a value (use {word}=VALUE)")
        name, value, step = word[2:], args[i + 1], 2
    if name not in own:
        raise ParameterError(
            f"unrecognised argument {word!r}: not a parameter here (they are: "
            f"{', '.join(sorted(own))}; step parameters are --steps.STEP.PARAM=VALUE)")
    out.setdefault(None, {})[name] = parse_value(value)
    return i + step


def _short_class(name):
    return str(name).rsplit(".", 1)[-1]


#: jwst class name -> step alias (what a parameter file's ``class`` names).
STEP_CLASSES = STEP_BY_CLASS


def read_parameter_file(path):
    """Read a jwst ASDF parameter file.

    Returns
    -------
    dict
        ``{"class": <short class name>, "step": alias or None, "parameters": {...},
        "steps": {alias: {...}}}``. A pipeline file (``Detector1Pipeline``) fills
        ``steps`` from its ``steps`` list; a single-step file names its ``step``.
    """
    import asdf

    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{path}: parameter file not found")
    try:
        with asdf.open(path, lazy_load=False) as af:
            tree = af.tree
            cls = _short_class(tree.get("class", ""))
            params = dict(tree.get("parameters") or {})
            steps = {}
            for entry in tree.get("steps") or []:
                alias = entry.get("name") or STEP_CLASSES.get(_short_class(entry.get("class", "")))
                if alias:
                    steps[alias] = dict(entry.get("parameters") or {})
    except ParameterError:
        raise
    except Exception as exc:  # asdf raises many kinds of errors on a bad file
        raise ParameterError(f"{path}: not a readable ASDF parameter file ({exc})") from exc
    if not cls:
        raise ParameterError(f"{path}: the parameter file has no 'class' entry")
    step = STEP_CLASSES.get(cls)
    if step is None and cls != "Detector1Pipeline":
        raise ParameterError(
            f"{path}: class {cls!r} is neither jwst.pipeline.Detector1Pipeline nor a detector1 step"
        )
    return {"class": cls, "step": step, "parameters": params, "steps": steps}
