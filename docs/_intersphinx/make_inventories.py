"""Write the offline intersphinx inventories in this folder.

The documentation is built without network access (CI reaches only the package
registries), so Sphinx cannot download ``objects.inv`` from scikit-learn, PyTorch,
skorch or NumPy. No PyPI package ships those inventories, so this script writes
equivalent ones from the *installed* packages: it walks their public names and
maps each to the page where the project's own documentation puts it (the URL
patterns below were checked against the sites' stable documentation). Only
``py:`` objects are listed, plus the scikit-learn glossary and user-guide labels
that inherited docstrings refer to.

Run it again after upgrading one of those packages (it is not run by the build)::

    python docs/_intersphinx/make_inventories.py
"""

import importlib
import inspect
import pathlib
import zlib

HERE = pathlib.Path(__file__).parent


def _kind(obj):
    if inspect.isclass(obj):
        return "class"
    if inspect.ismodule(obj):
        return "module"
    if callable(obj):
        return "function"
    return "data"


def _write(filename, project, version, entries):
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    lines = sorted(set(entries))
    body = "".join(f"{n} {d} {p} {u} {s}\n" for n, d, p, u, s in lines).encode()
    (HERE / filename).write_bytes(header + zlib.compress(body, 9))
    return len(lines)


def sklearn_entries():
    import sklearn

    entries = []
    for name in sklearn.__all__:
        if name.startswith("_") or name in {
            "clone",
            "config_context",
            "get_config",
            "set_config",
            "show_versions",
        }:
            continue
        module = importlib.import_module(f"sklearn.{name}")
        entries.append(
            (f"sklearn.{name}", "py:module", "0", f"api/sklearn.{name}.html", "-")
        )
        for member in getattr(module, "__all__", []):
            try:
                obj = getattr(module, member, None)
            except ImportError:  # experimental names need an enable_* import
                continue
            if obj is None or inspect.ismodule(obj):
                continue
            full = f"sklearn.{name}.{member}"
            kind = _kind(obj)
            entries.append((full, f"py:{kind}", "1", "modules/generated/$.html#$", "-"))
            if kind == "class":
                for attr, value in vars(obj).items():
                    if not attr.startswith("_") and callable(value):
                        entries.append(
                            (
                                f"{full}.{attr}",
                                "py:method",
                                "1",
                                f"modules/generated/{full}.html#$",
                                "-",
                            )
                        )
    for name in ("clone", "config_context", "get_config", "set_config"):
        entries.append(
            (f"sklearn.{name}", "py:function", "1", "modules/generated/$.html#$", "-")
        )
    # labels that scikit-learn's own (inherited) docstrings point to
    for label, page, title in [
        (
            "metadata_routing",
            "metadata_routing.html#metadata-routing",
            "Metadata Routing",
        ),
        (
            "cross_validation",
            "modules/cross_validation.html#cross-validation",
            "Cross-validation",
        ),
        (
            "grid_search",
            "modules/grid_search.html#grid-search",
            "Tuning the hyper-parameters",
        ),
        ("pipeline", "modules/compose.html#pipeline", "Pipeline"),
        (
            "scoring_parameter",
            "modules/model_evaluation.html#scoring-parameter",
            "scoring",
        ),
        ("glossary", "glossary.html", "Glossary"),
        (
            "set_output",
            "auto_examples/miscellaneous/plot_set_output.html",
            "set_output API",
        ),
    ]:
        entries.append((label, "std:label", "-1", page, title))
    for term in (
        "estimator",
        "fit",
        "predict",
        "transform",
        "groups",
        "random_state",
        "cv",
        "n_jobs",
        "metadata routing",
        "scorer",
        "transformer",
        "meta-estimator",
        "sample property",
        "metadata",
        "classifier",
        "pipeline",
        "array-like",
    ):
        entries.append(
            (
                term,
                "std:term",
                "-1",
                f"glossary.html#term-{term.replace(' ', '-')}",
                "-",
            )
        )
    return sklearn.__version__, entries


def torch_entries():
    import torch
    import torch.nn
    import torch.nn.functional

    entries = [
        ("torch.Tensor", "py:class", "1", "tensors.html#$", "-"),
        ("torch.device", "py:class", "1", "tensor_attributes.html#$", "-"),
        ("torch.dtype", "py:class", "1", "tensor_attributes.html#$", "-"),
        ("torch.Generator", "py:class", "1", "generated/$.html#$", "-"),
        ("torch.autocast", "py:class", "1", "amp.html#$", "-"),
        ("torch.compile", "py:function", "1", "generated/$.html#$", "-"),
        ("torch.autograd.Function", "py:class", "1", "autograd.html#$", "-"),
        ("torch.nn", "py:module", "0", "nn.html#module-$", "-"),
    ]
    for name in torch.nn.modules.__all__:
        entries.append((f"torch.nn.{name}", "py:class", "1", "generated/$.html#$", "-"))
    for name in ("Module", "Parameter", "Sequential"):
        entries.append((f"torch.nn.{name}", "py:class", "1", "generated/$.html#$", "-"))
    for name in dir(torch.nn.functional):
        if not name.startswith("_") and inspect.isfunction(
            getattr(torch.nn.functional, name)
        ):
            entries.append(
                (
                    f"torch.nn.functional.{name}",
                    "py:function",
                    "1",
                    "generated/$.html#$",
                    "-",
                )
            )
    for name in (
        "tensor",
        "as_tensor",
        "from_numpy",
        "no_grad",
        "manual_seed",
        "set_num_threads",
        "save",
        "load",
        "cat",
        "stack",
        "tanh",
        "sigmoid",
        "where",
        "einsum",
    ):
        entries.append((f"torch.{name}", "py:function", "1", "generated/$.html#$", "-"))
    return torch.__version__.split("+")[0], entries


def skorch_entries():
    import skorch
    import skorch.callbacks

    pages = {
        "skorch.net": "net.html",
        "skorch.classifier": "classifier.html",
        "skorch.regressor": "regressor.html",
        "skorch.history": "history.html",
        "skorch.dataset": "dataset.html",
        "skorch.helper": "helper.html",
        "skorch.utils": "utils.html",
        "skorch.exceptions": "exceptions.html",
        "skorch.callbacks": "callbacks.html",
    }
    entries = []
    for modname, page in pages.items():
        module = importlib.import_module(modname)
        entries.append((modname, "py:module", "0", f"{page}#module-$", "-"))
        for name, obj in vars(module).items():
            if (
                name.startswith("_")
                or getattr(obj, "__module__", "").split(".")[0] != "skorch"
            ):
                continue
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            home = obj.__module__
            if modname == "skorch.callbacks":
                home = "skorch.callbacks"
            if home != modname:
                continue
            entries.append(
                (f"{modname}.{name}", f"py:{_kind(obj)}", "1", f"{page}#$", "-")
            )
    # the top-level aliases point to their defining pages
    for name, target in [
        ("NeuralNet", "net.html#skorch.net.NeuralNet"),
        (
            "NeuralNetClassifier",
            "classifier.html#skorch.classifier.NeuralNetClassifier",
        ),
        ("NeuralNetRegressor", "regressor.html#skorch.regressor.NeuralNetRegressor"),
    ]:
        entries.append((f"skorch.{name}", "py:class", "1", target, "-"))
    return skorch.__version__, entries


def numpy_entries():
    import numpy

    entries = [
        ("numpy.ndarray", "py:class", "1", "reference/generated/$.html#$", "-"),
        ("numpy.dtype", "py:class", "1", "reference/generated/$.html#$", "-"),
        (
            "numpy.random.Generator",
            "py:class",
            "1",
            "reference/random/generator.html#$",
            "-",
        ),
        (
            "numpy.random.RandomState",
            "py:class",
            "1",
            "reference/random/legacy.html#$",
            "-",
        ),
        ("numpy.memmap", "py:class", "1", "reference/generated/$.html#$", "-"),
    ]
    for name in ("uint8", "float32", "float64"):
        entries.append(
            (
                f"numpy.{name}",
                "py:attribute",
                "1",
                "reference/arrays.scalars.html#$",
                "-",
            )
        )
    for name in dir(numpy):
        obj = getattr(numpy, name)
        if not name.startswith("_") and inspect.isfunction(obj):
            entries.append(
                (
                    f"numpy.{name}",
                    "py:function",
                    "1",
                    "reference/generated/$.html#$",
                    "-",
                )
            )
    return numpy.__version__, entries


if __name__ == "__main__":
    for filename, project, make in [
        ("sklearn.inv", "scikit-learn", sklearn_entries),
        ("torch.inv", "PyTorch", torch_entries),
        ("skorch.inv", "skorch", skorch_entries),
        ("numpy.inv", "NumPy", numpy_entries),
    ]:
        version, entries = make()
        n = _write(filename, project, version, entries)
        print(f"{filename}: {project} {version}, {n} entries")
