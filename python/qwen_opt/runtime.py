"""ctypes binding of libqwen_runtime (include/qwen_runtime.h).

    from qwen_opt.runtime import Bundle
    b = Bundle("model.bundle")
    s = b.session(4096)
    logits = s.prefill(b.tokenize("Hello"))   # [n, V] float32
    nxt = int(logits[-1].argmax())
    logits = s.decode(nxt)                     # [V]

The library is $QWEN_RUNTIME_LIB, else <repo>/build/lib/libqwen_runtime.so.
Every failure raises RuntimeError with the runtime's message.
"""

from __future__ import annotations

import ctypes
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

_c_int64_p = ctypes.POINTER(ctypes.c_int64)
_c_float_p = ctypes.POINTER(ctypes.c_float)

_lib: Optional[ctypes.CDLL] = None


def library_path() -> str:
    env = os.environ.get("QWEN_RUNTIME_LIB")
    if env:
        return env
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(repo, "build", "lib", "libqwen_runtime.so")


def _load() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise RuntimeError(f"cannot load the qwen runtime library {path}: {e} "
                           "(set QWEN_RUNTIME_LIB)") from e
    vp = ctypes.c_void_p
    sigs = {
        "qwen_last_error": (ctypes.c_char_p, []),
        "qwen_status_name": (ctypes.c_char_p, [ctypes.c_int]),
        "qwen_bundle_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.POINTER(vp)]),
        "qwen_bundle_free": (None, [vp]),
        "qwen_bundle_vocab_size": (ctypes.c_int64, [vp]),
        "qwen_bundle_num_layers": (ctypes.c_int64, [vp]),
        "qwen_bundle_has_kv_cache": (ctypes.c_int, [vp]),
        "qwen_bundle_has_tokenizer": (ctypes.c_int, [vp]),
        "qwen_bundle_num_eos_ids": (ctypes.c_int64, [vp]),
        "qwen_bundle_eos_ids": (_c_int64_p, [vp]),
        "qwen_bundle_target_name": (ctypes.c_char_p, [vp]),
        "qwen_bundle_architecture": (ctypes.c_char_p, [vp]),
        "qwen_bundle_device_name": (ctypes.c_char_p, [vp]),
        "qwen_bundle_set_num_threads": (ctypes.c_int, [vp, ctypes.c_int32]),
        "qwen_session_create": (ctypes.c_int, [vp, ctypes.c_int64, ctypes.POINTER(vp)]),
        "qwen_session_free": (None, [vp]),
        "qwen_session_prefill": (ctypes.c_int, [vp, _c_int64_p, ctypes.c_int64]),
        "qwen_session_decode": (ctypes.c_int, [vp, ctypes.c_int64]),
        "qwen_session_logits": (_c_float_p, [vp]),
        "qwen_session_logits_at": (_c_float_p, [vp, ctypes.c_int64]),
        "qwen_session_num_logits": (ctypes.c_int64, [vp]),
        "qwen_session_set_all_logits": (ctypes.c_int, [vp, ctypes.c_int]),
        "qwen_session_length": (ctypes.c_int64, [vp]),
        "qwen_session_context_length": (ctypes.c_int64, [vp]),
        "qwen_session_reset": (None, [vp]),
        "qwen_tokenize": (ctypes.c_int, [vp, ctypes.c_char_p, _c_int64_p,
                                         ctypes.c_int64, _c_int64_p]),
        "qwen_detokenize": (ctypes.c_int, [vp, _c_int64_p, ctypes.c_int64,
                                           ctypes.c_char_p, ctypes.c_int64, _c_int64_p]),
        "qwen_sample": (ctypes.c_int64, [_c_float_p, ctypes.c_int64, ctypes.c_float,
                                         ctypes.c_int32, ctypes.c_float,
                                         ctypes.POINTER(ctypes.c_uint64)]),
        "qwen_cpu_has_feature": (ctypes.c_int, [ctypes.c_char_p]),
        "qwen_bundle_num_observed": (ctypes.c_int64, [vp]),
        "qwen_bundle_observed_name": (ctypes.c_char_p, [vp, ctypes.c_int64]),
        "qwen_bundle_observed_num_layers": (ctypes.c_int64, [vp, ctypes.c_int64]),
        "qwen_bundle_observed_layer": (ctypes.c_char_p, [vp, ctypes.c_int64, ctypes.c_int64]),
        "qwen_session_observed": (ctypes.c_int, [vp, ctypes.c_int64, ctypes.POINTER(_c_float_p),
                                                 _c_int64_p, _c_int64_p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = res
        fn.argtypes = args
    _lib = lib
    return lib


QWEN_OK = 0
QWEN_ERR_BUFFER_TOO_SMALL = 13


def _error(status: int) -> RuntimeError:
    lib = _load()
    name = lib.qwen_status_name(status).decode()
    msg = lib.qwen_last_error().decode("utf-8", "replace")
    return RuntimeError(f"{msg} ({name})")


def _check(status: int) -> None:
    if status != QWEN_OK:
        raise _error(status)


def _ids_array(ids: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def cpu_has_feature(name: str) -> Optional[bool]:
    """True/False, or None for a name the runtime does not know."""
    r = _load().qwen_cpu_has_feature(name.encode())
    return None if r < 0 else bool(r)


def sample(logits: np.ndarray, temperature: float = 0.0, top_k: int = 0,
           top_p: float = 1.0, rng_state: Optional[List[int]] = None) -> int:
    """qwen_sample; `rng_state` is a one-element list updated in place."""
    lib = _load()
    arr = np.ascontiguousarray(logits, dtype=np.float32).reshape(-1)
    state = ctypes.c_uint64(rng_state[0] if rng_state else 0)
    r = lib.qwen_sample(arr.ctypes.data_as(_c_float_p), arr.size, temperature,
                        top_k, top_p, ctypes.byref(state))
    if rng_state is not None:
        rng_state[0] = state.value
    if r < 0:
        raise RuntimeError("qwen_sample: invalid arguments or all-NaN logits")
    return int(r)


class Bundle:
    """An opened bundle directory (checked as qwen_bundle_open describes)."""

    def __init__(self, path: str):
        self._lib = _load()
        self._h = ctypes.c_void_p()
        _check(self._lib.qwen_bundle_open(os.fsencode(path), ctypes.byref(self._h)))
        self.path = path

    def close(self) -> None:
        if getattr(self, "_h", None) and self._h.value:
            self._lib.qwen_bundle_free(self._h)
            self._h = ctypes.c_void_p()

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _handle(self) -> ctypes.c_void_p:
        if not self._h.value:
            raise RuntimeError("the bundle is closed")
        return self._h

    @property
    def vocab_size(self) -> int:
        return int(self._lib.qwen_bundle_vocab_size(self._handle()))

    @property
    def num_layers(self) -> int:
        return int(self._lib.qwen_bundle_num_layers(self._handle()))

    @property
    def has_kv_cache(self) -> bool:
        return bool(self._lib.qwen_bundle_has_kv_cache(self._handle()))

    @property
    def has_tokenizer(self) -> bool:
        return bool(self._lib.qwen_bundle_has_tokenizer(self._handle()))

    @property
    def eos_ids(self) -> List[int]:
        h = self._handle()
        n = self._lib.qwen_bundle_num_eos_ids(h)
        p = self._lib.qwen_bundle_eos_ids(h)
        return [int(p[i]) for i in range(n)]

    @property
    def target_name(self) -> str:
        return self._lib.qwen_bundle_target_name(self._handle()).decode()

    @property
    def architecture(self) -> str:
        return self._lib.qwen_bundle_architecture(self._handle()).decode()

    @property
    def device_name(self) -> Optional[str]:
        """The GPU a CUDA bundle runs on; None for a CPU bundle."""
        name = self._lib.qwen_bundle_device_name(self._handle())
        return name.decode() if name is not None else None

    def set_num_threads(self, n: int) -> None:
        _check(self._lib.qwen_bundle_set_num_threads(self._handle(), n))

    @property
    def observed(self) -> List[Tuple[str, List[str]]]:
        """(name, layers) of each "observe" output (calibration bundles)."""
        h = self._handle()
        out = []
        for i in range(self._lib.qwen_bundle_num_observed(h)):
            layers = [self._lib.qwen_bundle_observed_layer(h, i, j).decode()
                      for j in range(self._lib.qwen_bundle_observed_num_layers(h, i))]
            out.append((self._lib.qwen_bundle_observed_name(h, i).decode(), layers))
        return out

    def session(self, context_length: int = 4096, all_logits: bool = True) -> "Session":
        return Session(self, context_length, all_logits)

    def tokenize(self, text: str) -> List[int]:
        h, data = self._handle(), text.encode("utf-8")
        n = ctypes.c_int64(0)
        st = self._lib.qwen_tokenize(h, data, None, 0, ctypes.byref(n))
        if st not in (QWEN_OK, QWEN_ERR_BUFFER_TOO_SMALL):
            raise _error(st)
        ids = np.zeros(max(n.value, 1), dtype=np.int64)
        _check(self._lib.qwen_tokenize(h, data, ids.ctypes.data_as(_c_int64_p),
                                       ids.size, ctypes.byref(n)))
        return [int(x) for x in ids[:n.value]]

    def detokenize(self, ids: Sequence[int]) -> str:
        h, arr = self._handle(), _ids_array(ids)
        length = ctypes.c_int64(0)
        cap = 256
        while True:
            buf = ctypes.create_string_buffer(cap)
            st = self._lib.qwen_detokenize(h, arr.ctypes.data_as(_c_int64_p), arr.size,
                                           buf, cap, ctypes.byref(length))
            if st == QWEN_ERR_BUFFER_TOO_SMALL:
                cap = length.value + 1
                continue
            _check(st)
            return buf.raw[:length.value].decode("utf-8", "replace")


class Session:
    """A batch-1 generation state; keeps its Bundle alive."""

    def __init__(self, bundle: Bundle, context_length: int = 4096,
                 all_logits: bool = True):
        """all_logits=False: prefill returns the last position's logits only,
        [1, V] (qwen_session_set_all_logits: the LM head skips the others)."""
        self.bundle = bundle
        self._lib = bundle._lib
        self._h = ctypes.c_void_p()
        _check(self._lib.qwen_session_create(bundle._handle(), context_length,
                                             ctypes.byref(self._h)))
        self._vocab = bundle.vocab_size
        _check(self._lib.qwen_session_set_all_logits(self._h, int(all_logits)))

    def close(self) -> None:
        if getattr(self, "_h", None) and self._h.value:
            self._lib.qwen_session_free(self._h)
            self._h = ctypes.c_void_p()

    def __del__(self):
        self.close()

    def _handle(self) -> ctypes.c_void_p:
        if not self._h.value:
            raise RuntimeError("the session is closed")
        return self._h

    def _rows(self, n: int) -> np.ndarray:
        out = np.empty((n, self._vocab), dtype=np.float32)
        for i in range(n):
            p = self._lib.qwen_session_logits_at(self._h, i)
            out[i] = np.ctypeslib.as_array(p, shape=(self._vocab,))
        return out

    def prefill(self, ids: Sequence[int]) -> np.ndarray:
        """Appends `ids`; returns the logits of the new positions, [n, V]
        (of the last one, [1, V], for a session without all_logits)."""
        arr = _ids_array(ids)
        _check(self._lib.qwen_session_prefill(self._handle(),
                                              arr.ctypes.data_as(_c_int64_p), arr.size))
        return self._rows(int(self._lib.qwen_session_num_logits(self._h)))

    def decode(self, token: int) -> np.ndarray:
        """Appends one token; returns the logits of its position, [V]."""
        _check(self._lib.qwen_session_decode(self._handle(), int(token)))
        return self._rows(1)[0]

    @property
    def length(self) -> int:
        return int(self._lib.qwen_session_length(self._handle()))

    @property
    def context_length(self) -> int:
        return int(self._lib.qwen_session_context_length(self._handle()))

    def reset(self) -> None:
        self._lib.qwen_session_reset(self._handle())

    def observed(self, i: int) -> np.ndarray:
        """Observed activation i of the latest call, a copy, [rows, K]."""
        p = _c_float_p()
        rows, cols = ctypes.c_int64(0), ctypes.c_int64(0)
        _check(self._lib.qwen_session_observed(self._handle(), i, ctypes.byref(p),
                                               ctypes.byref(rows), ctypes.byref(cols)))
        return np.ctypeslib.as_array(p, shape=(rows.value, cols.value)).copy()
