"""Pickle scanning: walk the opcodes (never unpickle) and judge every global by an allow-list.

A pickle runs code only through the globals it names (``GLOBAL``, ``STACK_GLOBAL``, ``INST``)
and the calls it makes on them (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``BUILD``). Naming a global
already imports its module, so every global must be on the allow-list, called or not. A small
symbolic stack recovers the strings ``STACK_GLOBAL`` pops and the state joblib's array wrappers
carry, so that the raw array bytes joblib writes *inside* its pickle stream are skipped and the
opcodes after them are scanned too.
"""

from __future__ import annotations

import pickletools
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

__all__ = ["PickleScan", "is_allowed_global", "scan_pickle_stream"]

# Exact globals that build data and run nothing of the file's choosing.
_ALLOWED = {
    "builtins": {
        "set", "frozenset", "slice", "complex", "bytearray", "bytes", "range", "int",
        "float", "str", "dict", "list", "tuple", "bool", "object",
    },
    "_codecs": {"encode"},  # protocol 2 spells bytes as _codecs.encode(str, 'latin1')
    "copyreg": {"_reconstructor", "__newobj__", "__newobj_ex__"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "datetime": {"date", "datetime", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "fractions": {"Fraction"},
    "uuid": {"UUID"},
    "functools": {"partial"},  # what it wraps is a global of its own, checked like any other
    "numpy": {"dtype", "ndarray", "bool_", "float64", "float32", "int64", "int32"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "torch._utils": {
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor",
    },
    "torch._tensor": {"_rebuild_from_type_v2"},
    "torch": {
        "Size", "device", "Tensor", "float16", "float32", "float64", "bfloat16", "int8",
        "int16", "int32", "int64", "uint8", "bool", "complex64", "complex128",
    },
    "torch.storage": {"UntypedStorage", "TypedStorage"},
}  # fmt: skip
_TORCH_STORAGE = re.compile(r"[A-Z][A-Za-z]*Storage")
_SCIPY_SPARSE = re.compile(r"(csr|csc|coo|bsr|dia|dok|lil)_(matrix|array)")
# numpy.dtypes.Float64DType and friends (numpy 2), numpy.random bit generators.
_NUMPY_CLASSES = {"numpy.dtypes", "numpy.random._mt19937", "numpy.random._pcg64",
                  "numpy.random.bit_generator",
                  "numpy.random._philox", "numpy.random._sfc64", "numpy.random.mtrand",
                  "numpy.random._generator"}  # fmt: skip
# Parts of scikit-learn that run code or touch the network when called.
_SKLEARN_DENIED = (
    "sklearn.utils._testing",
    "sklearn.datasets",
    "sklearn.externals",
    "sklearn.callback",  # re-exports multiprocessing's Client and Listener (sockets)
)
# Capitalised names that library modules re-export from the standard library and that
# reach processes, threads, sockets or files when constructed.
_REEXPORTS_DENIED = {
    "Popen", "Thread", "Timer", "Process", "Pool", "Client", "Listener", "Connection",
    "Request", "PathLike", "Path", "TemporaryDirectory", "NamedTemporaryFile",
    "SpooledTemporaryFile", "ZipFile", "TarFile", "HTTPConnection", "HTTPSConnection",
}  # fmt: skip
# Called with its arguments checked: _ufunc_reconstruct(module, name) imports any module.
_UFUNC_RECONSTRUCT = {
    ("numpy.core", "_ufunc_reconstruct"),
    ("numpy._core", "_ufunc_reconstruct"),
    ("numpy.core.numeric", "_ufunc_reconstruct"),
}


def is_allowed_global(module: str, name: str) -> bool:
    """Whether a pickle may name ``module.name``: classes and rebuild helpers of data only."""
    if name in _ALLOWED.get(module, ()) or (module, name) in _UFUNC_RECONSTRUCT:
        return True
    if module == "__builtin__":  # Python 2 pickles
        return name in _ALLOWED["builtins"]
    top = module.partition(".")[0]
    if name in _REEXPORTS_DENIED:
        return False
    if top == "sklearn":
        if module.startswith(_SKLEARN_DENIED):
            return False
        # Estimator classes (also private ones); Cython's pickle helpers; the trees' newObj.
        return (
            name.lstrip("_")[:1].isupper() or name.startswith("__pyx_unpickle_") or name == "newObj"
        )
    if top == "scipy" and module.startswith("scipy.sparse"):
        return bool(_SCIPY_SPARSE.fullmatch(name))
    if module == "numpy":
        return _is_numpy_ufunc(name)
    if module in _NUMPY_CLASSES:
        return name[:1].isupper() or name.startswith("__pyx_unpickle_")
    if module == "torch":
        return bool(_TORCH_STORAGE.fullmatch(name))
    if module.startswith("torch.nn.modules.") or module.startswith("torch.nn.parameter"):
        return name[:1].isupper()
    return False


def _is_numpy_ufunc(name: str) -> bool:
    """``numpy.log1p`` and the like (a FunctionTransformer's func): arithmetic only."""
    import numpy

    # vars(), not getattr: no lazy submodule import for a name the file chose.
    return isinstance(vars(numpy).get(name), numpy.ufunc)


class _Mark:
    pass


_MARK = _Mark()


@dataclass(frozen=True)
class _Global:
    module: str
    name: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class _Call:
    """What a REDUCE/NEWOBJ/OBJ/INST would build: a call of ``func`` on ``args``."""

    func: Any
    args: Any
    state: Any = None


class _Unknown:
    """A value the scanner does not model (a buffer, a persistent id, an extension)."""


_UNKNOWN = _Unknown()


@dataclass
class PickleScan:
    """The globals a pickle stream names and why it is unsafe (no reasons: safe)."""

    globals: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    streams: int = 0

    def flag(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


class _Malformed(Exception):
    pass


_LITERALS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "BINBYTES",
    "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "FLOAT", "BINFLOAT",
}  # fmt: skip
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_NOOPS = {"PROTO", "FRAME", "READONLY_BUFFER"}


def scan_pickle_stream(fh: BinaryIO, scan: PickleScan) -> None:
    """Walk one pickle stream from ``fh``'s position to its STOP (``ValueError`` if malformed)."""
    scan.streams += 1
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop() -> Any:
        if not stack:
            raise _Malformed("stack underflow")
        return stack.pop()

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise _Malformed("no MARK on the stack")

    def top() -> Any:
        if not stack:
            raise _Malformed("stack underflow")
        return stack[-1]

    def name_global(module: Any, name: Any) -> _Global:
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Malformed("STACK_GLOBAL with a module or name that is not a string")
        found = _Global(module, name)
        scan.globals.append(str(found))
        if not is_allowed_global(module, name):
            scan.flag(f"global {found} is not on the allow-list")
        return found

    def call(func: Any, args: Any) -> _Call:
        if isinstance(func, _Global):
            if (func.module, func.name) in _UFUNC_RECONSTRUCT and not (
                isinstance(args, tuple)
                and len(args) == 2
                and isinstance(args[0], str)
                and (args[0] == "numpy" or args[0].startswith("numpy."))
            ):
                scan.flag(f"{func} is called to import something other than a numpy ufunc")
        elif not (
            isinstance(func, _Call)
            and isinstance(func.func, _Global)
            and (func.func.module, func.func.name) in _UFUNC_RECONSTRUCT
        ):
            scan.flag("a call of something that is not an allowed global (an indirect call)")
        return _Call(func, args)

    try:
        for opcode, arg, _pos in pickletools.genops(fh):
            op = opcode.name
            if op in _LITERALS:
                stack.append(arg)
            elif op in _CONSTANTS:
                stack.append(_CONSTANTS[op])
            elif op in _NOOPS:
                pass
            elif op == "STOP":
                pop()
                return
            elif op == "MARK":
                stack.append(_MARK)
            elif op == "EMPTY_LIST":
                stack.append([])
            elif op == "EMPTY_TUPLE":
                stack.append(())
            elif op in ("EMPTY_DICT", "EMPTY_SET"):
                stack.append({} if op == "EMPTY_DICT" else set())
            elif op == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(op[-1])
                items = [pop() for _ in range(n)]
                stack.append(tuple(reversed(items)))
            elif op == "LIST":
                stack.append(pop_mark())
            elif op == "DICT":
                items = pop_mark()
                stack.append(_as_dict(items))
            elif op == "FROZENSET":
                pop_mark()
                stack.append(frozenset())
            elif op == "APPEND":
                value = pop()
                if isinstance(top(), list):
                    top().append(value)
            elif op == "APPENDS":
                items = pop_mark()
                if isinstance(top(), list):
                    top().extend(items)
            elif op == "SETITEM":
                value, key = pop(), pop()
                _set_items(top(), [key, value])
            elif op == "SETITEMS":
                _set_items_after(stack, pop_mark())
            elif op == "ADDITEMS":
                pop_mark()
                top()
            elif op == "POP":
                pop()
            elif op == "POP_MARK":
                pop_mark()
            elif op == "DUP":
                stack.append(top())
            elif op in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[_memo_key(arg)] = top()
            elif op == "MEMOIZE":
                memo[len(memo)] = top()
            elif op in ("GET", "BINGET", "LONG_BINGET"):
                if _memo_key(arg) not in memo:
                    raise _Malformed(f"memo key {arg} is read before it is written")
                stack.append(memo[_memo_key(arg)])
            elif op == "GLOBAL":
                module, _, name = str(arg).partition(" ")
                stack.append(name_global(module, name))
            elif op == "STACK_GLOBAL":
                name, module = pop(), pop()
                stack.append(name_global(module, name))
            elif op == "INST":
                module, _, name = str(arg).partition(" ")
                stack.append(call(name_global(module, name), tuple(pop_mark())))
            elif op == "OBJ":
                items = pop_mark()
                if not items:
                    raise _Malformed("OBJ without a class")
                stack.append(call(items[0], tuple(items[1:])))
            elif op == "REDUCE" or op == "NEWOBJ":
                args = pop()
                stack.append(call(pop(), args))
            elif op == "NEWOBJ_EX":
                pop()
                args = pop()
                stack.append(call(pop(), args))
            elif op == "BUILD":
                state = pop()
                target = top()
                if isinstance(target, _Call):
                    target.state = state
                    _after_build(fh, target, scan)
            elif op == "PERSID":
                stack.append(_UNKNOWN)
            elif op in ("BINPERSID",):
                pop()
                stack.append(_UNKNOWN)
            elif op == "NEXT_BUFFER":
                stack.append(_UNKNOWN)
            elif op in ("EXT1", "EXT2", "EXT4"):
                scan.flag(f"extension code {arg} names a global the scanner cannot check")
                stack.append(_UNKNOWN)
            else:
                raise _Malformed(f"opcode {op} is not understood")
    except _Malformed as exc:
        raise ValueError(str(exc)) from exc
    raise ValueError("pickle ended without a STOP opcode")


def _memo_key(arg: Any) -> int:
    if not isinstance(arg, int):
        raise _Malformed(f"memo key {arg!r} is not a number")
    return arg


def _as_dict(items: list[Any]) -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for key, value in zip(items[::2], items[1::2], strict=False):
        if _hashable(key):
            found[key] = value
    return found


def _set_items(target: Any, items: list[Any]) -> None:
    if isinstance(target, dict):
        target.update(_as_dict(items))


def _set_items_after(stack: list[Any], items: list[Any]) -> None:
    if not stack:
        raise _Malformed("stack underflow")
    _set_items(stack[-1], items)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _after_build(fh: BinaryIO, target: _Call, scan: PickleScan) -> None:
    """joblib writes an array's bytes right after its wrapper's BUILD: skip or scan them."""
    func = target.func
    if not (isinstance(func, _Global) and str(func) == "joblib.numpy_pickle.NumpyArrayWrapper"):
        return
    state = target.state
    if not isinstance(state, dict):
        raise _Malformed("a joblib array wrapper without its state")
    spec = _dtype_spec(state.get("dtype"))
    if spec is None:
        raise _Malformed("a joblib array wrapper whose dtype cannot be read")
    if spec.startswith("O"):
        # Object arrays are a nested pickle stream: scan it like the outer one.
        scan_pickle_stream(fh, scan)
        return
    import numpy

    try:
        itemsize = int(numpy.dtype(spec).itemsize)
    except TypeError as exc:
        raise _Malformed(f"a joblib array of unknown dtype {spec!r}") from exc
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _Malformed("a joblib array wrapper whose shape cannot be read")
    count = 1
    for n in shape:
        count *= n
    if state.get("numpy_array_alignment_bytes") is not None:
        padding = fh.read(1)
        if len(padding) != 1:
            raise _Malformed("a joblib array is truncated")
        fh.seek(padding[0], 1)
    fh.seek(count * itemsize, 1)


def _dtype_spec(value: Any) -> str | None:
    """'f8' from the symbolic ``numpy.dtype('f8', False, True)``."""
    if (
        isinstance(value, _Call)
        and isinstance(value.func, _Global)
        and value.func.name == "dtype"
        and isinstance(value.args, tuple)
        and value.args
        and isinstance(value.args[0], str)
    ):
        return value.args[0]
    return None
