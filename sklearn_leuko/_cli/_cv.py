"""``sklearn-leuko cv``: the paper's protocol, Table 2 and the figures."""

import functools
import time
from pathlib import Path

from ..utils._escape import escape_markdown
from ..utils._files import write_text_atomic
from ._common import (
    check_checkpoint_args,
    check_data_path,
    load_data,
    net_params,
    setup_torch,
    stage_params,
)
from ._console import EXIT_OK, CLIError, UsageError


def cmd_cv(args, console):
    check_checkpoint_args(args)
    if args.folds < 2:
        raise UsageError(f"--folds must be at least 2, got {args.folds}")
    check_data_path(args)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CLIError(f"--output {output}: exists and is not a folder.")
    setup_torch(args)
    from .._registry import get_stage
    from ..evaluation import run_protocol
    from ..report import format_protocol_report, protocol_tables, write_protocol_outputs

    X, y, groups, filenames = load_data(args, console)
    console.info(
        f"Protocol: {args.test_subjects} test subjects, {args.folds} subject-level "
        f"folds over the others; stages "
        f"{', '.join(get_stage(s).label for s in args.stages)}; {args.epochs} epochs "
        "per network."
    )
    start = time.perf_counter()
    protocol = functools.partial(
        run_protocol,
        X,
        y,
        groups,
        stages=args.stages,
        n_splits=args.folds,
        test_subjects=args.test_subjects,
        net_params=net_params(args),
        stage_params=stage_params(args, args.stages),
        epoch_selection=args.epoch_selection,
        random_state=args.seed,
        progress=not args.quiet,
    )
    if args.scheduler:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise CLIError(
                "--scheduler needs Dask: pip install 'sklearn-leuko[dask]'."
            ) from None
        from .._distributed import dask_backend

        console.info(f"Running the folds on the Dask cluster at {args.scheduler}.")
        with dask_backend(args.scheduler, scatter=[X]):
            result = protocol(n_jobs=-1)
    else:
        result = protocol(n_jobs=None if args.jobs == 1 else args.jobs)
    elapsed = time.perf_counter() - start

    tables = protocol_tables(result)
    console.out(format_protocol_report(result, tables))
    written = write_protocol_outputs(result, output, X, y, filenames, tables)
    data_lines = _data_lines(args.data_description)
    console.out("Data: " + "; ".join(data_lines))
    table2_md = output / "table2.md"
    if table2_md.exists():
        write_text_atomic(
            table2_md,
            "## Data\n\n"
            + "".join(f"- {escape_markdown(line)}\n" for line in data_lines)
            + "\n"
            + table2_md.read_text(),
        )
    if args.html:
        import html

        from ..report import to_html

        path = to_html(result, output / "report.html", X, filenames=filenames)
        section = (
            "<h2>Data</h2><ul>"
            + "".join(f"<li>{html.escape(line)}</li>" for line in data_lines)
            + "</ul>"
        )
        text = path.read_text()
        write_text_atomic(
            path, text.replace("<h2>Run</h2>", section + "<h2>Run</h2>", 1)
        )
        written.append((path, "everything above in one self-contained HTML file"))
    console.out(
        f"Best stage on the validation folds: {result.best_stage}. Finished in "
        f"{elapsed:.0f} s."
    )
    console.out(f"Wrote to {output}/:")
    for path, what in written:
        console.out(f"  {path.name:<22} {what}")
    return EXIT_OK


def _data_lines(description):
    """What the run was on: source, cells and subjects per class, geometry."""
    geometry = description["geometry"]
    return [
        f"source: {description['source']}",
        f"cells per class: {description['per_class']}",
        f"geometry: {geometry['crop_size']} px cut from a "
        f"{geometry['source_size']} px canvas, resized to {geometry['image_size']} px",
    ]
