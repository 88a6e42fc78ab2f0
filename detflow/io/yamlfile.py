"""Small YAML files detflow reads (cluster specs, workflows), with named errors."""

from pathlib import Path

from detflow.errors import ParameterError


def read_yaml(path, what):
    """The content of the YAML file ``path``; ``what`` names it in errors
    (``"workflow"``, ``"cluster spec"``).

    Raises
    ------
    ParameterError
        The file is missing or is not valid YAML.
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise ParameterError(f"{what} {path}: file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParameterError(f"{what} {path}: not valid YAML ({exc})") from None
