"""Which public names have no page in the API reference?

Used twice: ``conf.py`` runs it when a build finishes (a missing page is then a
warning, an error under ``-W``), and ``tests/test_docs.py`` runs it on the stub
pages that autosummary generates, without a full build.

Public names are those in ``sklearn_leuko.__all__`` and in the ``__all__`` of
each public subpackage. A name re-exported under a second name (``LogDCT`` at
the top level and in ``preprocessing``) is covered by the page of either name.
"""

import inspect
import pathlib


def public_names():
    """``{qualified name: object}`` of every public name."""
    import sklearn_leuko

    names = {}
    for name in sklearn_leuko.__all__:
        obj = getattr(sklearn_leuko, name)
        names[f"sklearn_leuko.{name}"] = obj
        if inspect.ismodule(obj) and obj.__name__ == f"sklearn_leuko.{name}":
            for member in getattr(obj, "__all__", []):
                names[f"sklearn_leuko.{name}.{member}"] = getattr(obj, member)
    return names


def missing_pages(generated_dir):
    """Public names with no page (``<qualified name>.rst``) in ``generated_dir``."""
    pages = {p.stem for p in pathlib.Path(generated_dir).glob("*.rst")}
    names = public_names()
    documented_ids = {
        id(obj)
        for qualified, obj in names.items()
        if qualified in pages
        and (inspect.isclass(obj) or callable(obj) or inspect.ismodule(obj))
    }
    missing = []
    for qualified, obj in names.items():
        if qualified in pages:
            continue
        aliasable = inspect.isclass(obj) or callable(obj) or inspect.ismodule(obj)
        if aliasable and id(obj) in documented_ids:
            continue
        missing.append(qualified)
    return sorted(missing)


if __name__ == "__main__":
    here = pathlib.Path(__file__).parent
    print(missing_pages(here / "api" / "generated") or "every public name has a page")
