"""Reference datamodels given as overrides (jwst accepts a model object as
``override_<reftype>``), saved once to a file so they are read lazily like any
reference file."""

from __future__ import annotations

import functools
import os
import threading
import weakref

from detflow.io.references.exposure import _upper

__all__ = ["reference_model_path"]


#: The files written for models: ``id(model) -> (weak reference to the model, path)``.
#: An id is only unique among live objects, so an entry holds the model weakly and
#: counts only while that reference still gives the same object; the entry is dropped
#: when its model is collected (the file itself stays until exit: a graph built from
#: the model may still read it). Holding the model weakly keeps no model (and its
#: arrays) alive for the rest of the process.
_MODEL_FILES = {}
_MODEL_LOCK = threading.Lock()


def _forget_model(key, ref):
    """Drop ``key``'s entry once its model is collected (a weak-reference callback:
    runs during garbage collection, so it takes no lock; the entry is still this
    reference's, as no other object can have the model's id before it is freed)."""
    hit = _MODEL_FILES.get(key)
    if hit is not None and hit[0] is ref:
        _MODEL_FILES.pop(key, None)


def _weak(model, key):
    """A weak reference to ``model`` that forgets its entry when the model goes; a
    strong one (a closure) for an object that cannot be weakly referenced."""
    try:
        return weakref.ref(model, functools.partial(_forget_model, key))
    except TypeError:
        return lambda: model


def reference_model_path(model, reftype=None):
    """A file holding a reference datamodel given as ``override_<reftype>`` (jwst
    accepts model objects there), so it is read lazily like any reference file.

    The model is saved once per object (a copy: the user's model is not changed) as
    FITS into a private temporary folder of this process, and that path is returned
    on later calls; the file lives as long as the process (removed at its exit). It
    is read by path, so with a cluster of other machines give a file every worker can
    read instead.
    """
    import atexit
    import shutil
    import tempfile

    key = id(model)
    with _MODEL_LOCK:
        hit = _MODEL_FILES.get(key)
        if hit is not None and hit[0]() is model and os.path.exists(hit[1]):
            return hit[1]
    folder = tempfile.mkdtemp(prefix="detflow-refmodels-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # removed with the process
    rt = _upper(getattr(getattr(model, "meta", None), "reftype", None) or reftype or "ref")
    name = getattr(model.meta, "filename", None) or f"{rt.lower()}.fits"
    stem = os.path.splitext(os.path.basename(str(name)))[0] or rt.lower()
    path = os.path.join(folder, f"{stem}.fits")
    with model.copy() as copy_:
        copy_.save(path)
    ref = _weak(model, key)
    with _MODEL_LOCK:
        _MODEL_FILES[key] = (ref, path)
    return path
