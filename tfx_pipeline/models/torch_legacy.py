"""Read a legacy-format PyTorch state dict (``torch.save`` before 1.6) without PyTorch.

The legacy file is a sequence of pickles: magic number, protocol version, system info,
the object itself (tensors refer to storages through persistent ids), the list of
storage keys, then each storage's raw little-endian data preceded by its element count.
PyTorch (>2 GB) is not worth installing to read one 19 MB file of float32 arrays.
"""
from __future__ import annotations

import collections
import pickle
import struct

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _Storage:
    def __init__(self, dtype, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self) -> np.ndarray:
        itemsize = np.dtype(self.storage.dtype).itemsize
        base = self.storage.data[self.offset:]
        view = np.lib.stride_tricks.as_strided(base, shape=self.size, strides=[s * itemsize for s in self.stride])
        return np.array(view)  # own the memory


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _TensorRef(storage, storage_offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, handle, storages: dict):
        super().__init__(handle)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid[:5]
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        return self.storages.setdefault(key, _Storage(_DTYPES[storage_type], numel))


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Load a legacy-format ``.pth`` state dict as {name: numpy array}."""
    with open(path, "rb") as handle:
        magic = pickle.load(handle)
        if magic != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy-format PyTorch file (new zip-format files need torch)")
        pickle.load(handle)  # protocol version
        pickle.load(handle)  # system info
        storages: dict[str, _Storage] = {}
        state = _Unpickler(handle, storages).load()
        for key in pickle.load(handle):
            storage = storages[key]
            (numel,) = struct.unpack("<q", handle.read(8))
            itemsize = np.dtype(storage.dtype).itemsize
            storage.data = np.frombuffer(handle.read(numel * itemsize), dtype=storage.dtype)
    return {name: ref.to_numpy() for name, ref in state.items() if isinstance(ref, _TensorRef)}
