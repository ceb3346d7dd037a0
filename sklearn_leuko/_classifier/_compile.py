"""``compile=True``: inference through :func:`torch.compile` of the fitted module.

Measured on this project's 2-core CPU, Stage-1 at 350x350: prediction
through the estimator 1.35x faster after 7.5 s of compilation
(``benchmarks/speed/compile_estimator.py``), training 1.04x in a plain loop
(``benchmarks/speed/compile_loop.py``: no gain), so only inference is compiled. The compiled
callables are kept beside the fitted module and never saved: a model file
holds the plain module, and a loaded model compiles again on first use.
"""

import contextlib

import torch

__all__ = ["CompileMixin"]

_CACHE = "_compiled_inference"


def _is_compiler_error(exc):
    module = type(exc).__module__ or ""
    return module.startswith(("torch._dynamo", "torch._inductor"))


class CompileMixin:
    """Adds ``compile`` to :class:`~sklearn_leuko.LeukoNetClassifier`."""

    def _check_compile(self):
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}.")
        return self.compile

    def _compiled(self, module):
        cache = self.__dict__.get(_CACHE)
        if cache is None or cache[0] is not module:
            cache = (module, torch.compile(module), torch.compile(module.features))
            self.__dict__[_CACHE] = cache
        return cache[1], cache[2]

    @contextlib.contextmanager
    def _inference(self):
        """Yield ``(forward, features)`` of the fitted module, compiled if asked.

        While it is open, the skorch net predicts through the compiled
        forward (``net_.module_`` is swapped and restored afterwards).
        """
        module = self.net_.module_
        if not self._check_compile():
            yield module, module.features
            return
        forward, features = self._compiled(module)
        self.net_.module_ = forward
        try:
            yield forward, features
        except Exception as exc:
            if _is_compiler_error(exc):
                raise RuntimeError(
                    "compile=True: torch.compile could not compile the network "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). It "
                    "needs a C++ compiler on the CPU (gcc or clang) and Triton on "
                    "CUDA; install them or set compile=False."
                ) from exc
            raise
        finally:
            self.net_.module_ = module

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop(_CACHE, None)
        return state
