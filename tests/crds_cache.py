"""Build a small but real CRDS cache (mappings with valid checksums + reference files).

The ``crds`` client then resolves references offline exactly as it does from
a cache synced from the CRDS server, so detflow's CRDS branch (and jwst itself)
can be tested without a network.
"""

import shutil
from pathlib import Path

from astropy.io import fits
from jwst_oracle import SERVER_CONFIG

CONTEXT = "jwst_0000.pmap"

#: every reference type a detector1 step may ask for (as CRDS names them)
DETECTOR1_REFTYPES = (
    "mask", "saturation", "superbias", "ipc", "refpix", "sirskernel", "linearity", "dark",
    "gain", "readnoise", "emicorr", "rscd", "reset", "pictureframe", "flat", "pastasoss",
    "persat", "trapdensity", "trappars",
)


def _mapping(text, path):
    from crds.core import rmap

    mapping = rmap.Mapping.from_string(text, Path(path).name, ignore_checksum=True)
    mapping.write(str(path))  # writes the correct sha1sum


def make_crds_cache(root, refs, *, instrument="NIRCAM"):
    """Write a CRDS cache under ``root`` serving the reference files ``refs``.

    Parameters
    ----------
    root : Path
        The cache folder (``CRDS_PATH``).
    refs : dict
        Reference type (any case) -> file. Each file is selected by its
        DETECTOR (and SUBARRAY for DARK) with a USEAFTER of its own; detector1
        reference types not in ``refs`` are N/A, as in the operational context.

    Returns
    -------
    dict
        The environment to set (``CRDS_PATH``, ``CRDS_MODE``, ...).
    """
    root = Path(root)
    inst = instrument.lower()
    (root / "config" / "jwst").mkdir(parents=True, exist_ok=True)
    (root / "config" / "jwst" / "server_config").write_text(repr(SERVER_CONFIG))
    maps = root / "mappings" / "jwst"
    maps.mkdir(parents=True, exist_ok=True)
    refdir = root / "references" / "jwst" / inst
    refdir.mkdir(parents=True, exist_ok=True)

    selectors = []
    for reftype in DETECTOR1_REFTYPES:
        path = {k.lower(): v for k, v in refs.items()}.get(reftype)
        if path is None:
            selectors.append(f"    '{reftype}' : 'N/A',")
            continue
        name = Path(path).name
        shutil.copy(path, refdir / name)
        header = fits.getheader(path)
        detector = header["DETECTOR"]
        rmap_name = f"jwst_{inst}_{reftype}_0000.rmap"
        if reftype == "dark":
            parkey = "(('META.INSTRUMENT.DETECTOR', 'META.SUBARRAY.NAME'), " \
                     "('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))"
            match = f"('{detector}', '{header['SUBARRAY']}')"
        else:
            parkey = "(('META.INSTRUMENT.DETECTOR',), " \
                     "('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))"
            match = f"('{detector}',)"
        text = (
            "header = {\n"
            "    'derived_from' : 'detflow test cache',\n"
            f"    'filekind' : '{reftype.upper()}',\n"
            f"    'instrument' : '{instrument}',\n"
            "    'mapping' : 'REFERENCE',\n"
            f"    'name' : '{rmap_name}',\n"
            "    'observatory' : 'JWST',\n"
            f"    'parkey' : {parkey},\n"
            "    'sha1sum' : '0',\n"
            "}\n\n"
            "selector = Match({\n"
            f"    {match} : UseAfter({{\n"
            f"        '2022-01-01 00:00:00' : '{name}',\n"
            "    }),\n"
            "})\n"
        )
        _mapping(text, maps / rmap_name)
        selectors.append(f"    '{reftype}' : '{rmap_name}',")

    imap_name = f"jwst_{inst}_0000.imap"
    imap = (
        "header = {\n"
        "    'derived_from' : 'detflow test cache',\n"
        f"    'instrument' : '{instrument}',\n"
        "    'mapping' : 'INSTRUMENT',\n"
        f"    'name' : '{imap_name}',\n"
        "    'observatory' : 'JWST',\n"
        "    'parkey' : ('REFTYPE',),\n"
        "    'sha1sum' : '0',\n"
        "}\n\n"
        "selector = {\n" + "\n".join(selectors) + "\n}\n"
    )
    _mapping(imap, maps / imap_name)
    pmap = (
        "header = {\n"
        "    'derived_from' : 'detflow test cache',\n"
        "    'mapping' : 'PIPELINE',\n"
        f"    'name' : '{CONTEXT}',\n"
        "    'observatory' : 'JWST',\n"
        "    'parkey' : ('META.INSTRUMENT.NAME',),\n"
        "    'sha1sum' : '0',\n"
        "}\n\n"
        f"selector = {{\n    '{instrument}' : '{imap_name}',\n}}\n"
    )
    _mapping(pmap, maps / CONTEXT)
    env = {
        "CRDS_PATH": str(root),
        "CRDS_SERVER_URL": "https://crds-offline.invalid",
        "CRDS_CONTEXT": CONTEXT,
        "CRDS_MODE": "local",
        "STPIPE_DISABLE_CRDS_STEPPARS": "true",
    }
    return env
