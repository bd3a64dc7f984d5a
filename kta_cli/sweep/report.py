"""What a sweep folder holds besides its trials: the table of trials (CSV, Markdown), the best
configuration as a command to run again (best.yaml), parameter importances, the optimisation
history and parallel coordinates (PNG; an HTML page), and TensorBoard hparams across trials.

Every worker rewrites these when it stops, from the study, so the last one out leaves them whole.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import yaml  # noqa: E402
from optuna.trial import FrozenTrial, TrialState  # noqa: E402

from kta_cli.report.run_folder import write_text_atomic  # noqa: E402
from kta_cli.sweep.study import UNCOUNTED  # noqa: E402


def shown_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Every trial but the slots a worker gave back at once (asked together with another)."""
    return [t for t in study.get_trials() if t.user_attrs.get(UNCOUNTED) != "surplus"]


def trial_rows(study: optuna.Study, metric: str) -> list[dict[str, Any]]:
    rows = []
    for t in shown_trials(study):
        state = "interrupted" if t.user_attrs.get(UNCOUNTED) else t.state.name.lower()
        rows.append(
            {
                "trial": t.number,
                "state": state,
                metric: t.value,
                **{key: t.params.get(key) for key in sorted(study_params(study))},
                "epochs_reported": len(t.intermediate_values),
                "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
                "run_dir": t.user_attrs.get("run_dir", ""),
                "error": t.user_attrs.get("error", ""),
            }
        )
    return rows


def study_params(study: optuna.Study) -> set[str]:
    return {key for t in study.get_trials(deepcopy=False) for key in t.params}


def write_reports(
    study: optuna.Study, folder: Path, *, command: str, fixed: list[str], metric: str
) -> dict[str, Any]:
    """Every file of the sweep folder; returns the best trial's summary (None without one)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = trial_rows(study, metric)
    write_table(rows, folder)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = write_best(study, folder, command, fixed, metric) if complete else None
    importances = write_importances(study, folder)
    images = write_plots(study, folder, metric) if complete else {}
    write_html(study, metric, rows, images, importances, folder, best)
    write_hparams(study, folder, metric)
    return {"best": best, "importances": importances, "trials": len(rows)}


def write_table(rows: list[dict[str, Any]], folder: Path) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(folder / "trials.csv", buffer.getvalue())
    header = [k for k in rows[0] if k != "error"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row[k]) for k in header) + " |")
    write_text_atomic(folder / "trials.md", "\n".join(lines) + "\n")


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_best(
    study: optuna.Study, folder: Path, command: str, fixed: list[str], metric: str
) -> dict[str, Any]:
    """best.yaml: the command and every override of the best trial, and the line to run it."""
    best = study.best_trial
    overrides = [*fixed, *best.user_attrs.get("overrides", [])]
    summary = {
        "command": command,
        "overrides": overrides,
        "run": " ".join(["kta", command, *overrides]),
        "metric": metric,
        "value": best.value,
        "trial": best.number,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
    }
    write_text_atomic(folder / "best.yaml", yaml.safe_dump(summary, sort_keys=False))
    return summary


def write_importances(study: optuna.Study, folder: Path) -> dict[str, float] | str:
    """fANOVA importances; a sentence instead while too few trials finished to say."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [k for k in study_params(study) if len({str(t.params.get(k)) for t in complete}) > 1]
    if len(complete) < 2 or not varied:
        result: dict[str, float] | str = (
            f"needs at least 2 finished trials with different values ({len(complete)} finished)"
        )
    else:
        try:
            result = dict(optuna.importance.get_param_importances(study))
        except (RuntimeError, ValueError) as error:
            result = f"not computed: {error}"
    write_text_atomic(folder / "importances.yaml", yaml.safe_dump({"importances": result}))
    return result


def write_plots(study: optuna.Study, folder: Path, metric: str) -> dict[str, Path]:
    """Optuna's matplotlib history and parallel-coordinates figures as PNG."""
    from optuna.visualization import matplotlib as optuna_plots

    figures = {
        "history": lambda: optuna_plots.plot_optimization_history(study, target_name=metric),
        "parallel": lambda: optuna_plots.plot_parallel_coordinate(study, target_name=metric),
    }
    written = {}
    for name, draw in figures.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = draw()
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        path, partial = folder / f"{name}.png", folder / f".{name}.{os.getpid()}.png"
        figure.savefig(partial, dpi=100, bbox_inches="tight")  # then renamed: workers may race
        plt.close(figure)
        os.replace(partial, path)
        written[name] = path
    return written


def write_html(
    study: optuna.Study,
    metric: str,
    rows: list[dict[str, Any]],
    images: dict[str, Path],
    importances: dict[str, float] | str,
    folder: Path,
    best: dict[str, Any] | None,
) -> None:
    """sweep.html: Optuna's interactive plotly figures when plotly is installed; otherwise one
    self-contained page (the PNGs inlined, the trials table sortable by clicking a header)."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        interactive = ""
    else:
        interactive = plotly_section(study, metric) if images else ""
    header = list(rows[0]) if rows else []
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r[k]))}</td>" for k in header) + "</tr>"
        for r in rows
    )
    pictures = "".join(
        f'<img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode(path.read_bytes()).decode()}">'
        for name, path in images.items()
    )
    page = HTML.format(
        best=html.escape(best["run"] if best else "no finished trial yet"),
        importances=html.escape(str(importances)),
        header="".join(
            f"<th onclick='sortBy({i})'>{html.escape(k)}</th>" for i, k in enumerate(header)
        ),
        body=body,
        pictures=interactive or pictures,
    )
    write_text_atomic(folder / "sweep.html", page)


def plotly_section(study: optuna.Study, metric: str) -> str:
    """Optuna's plotly history and parallel coordinates, plotly.js inlined (no download)."""
    from optuna.visualization import plot_optimization_history, plot_parallel_coordinate

    figures = [
        plot_optimization_history(study, target_name=metric),
        plot_parallel_coordinate(study, target_name=metric),
    ]
    return "".join(
        f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(figures)
    )


def write_hparams(study: optuna.Study, folder: Path, metric: str) -> None:
    """TensorBoard's HPARAMS tab: one row per finished or pruned trial (rewritten each time)."""
    from torch.utils.tensorboard import SummaryWriter

    board, partial = folder / "tensorboard", folder / f".tensorboard.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    writer = SummaryWriter(str(partial))
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        params = {
            k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in t.params.items()
        }
        value = t.value if t.value is not None else float("nan")
        writer.add_hparams(
            {**params, "state": t.state.name.lower()},
            {f"hparam/{metric}": value},
            run_name=f"trial_{t.number:04d}",
        )
    writer.close()
    shutil.rmtree(board, ignore_errors=True)  # the folder is rewritten whole, never appended to
    try:
        partial.rename(board)
    except OSError:  # another worker renamed its own copy in between: that one stands
        shutil.rmtree(partial, ignore_errors=True)


HTML = """<!doctype html><html><head><meta charset="utf-8"><title>kta sweep</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px}}th{{cursor:pointer;background:#eee}}
img{{max-width:48%;margin:1%}}</style></head><body>
<h1>kta sweep</h1><p>best: <code>{best}</code></p><p>importances: {importances}</p>
{pictures}<table id="t"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
<script>function sortBy(c){{const b=document.querySelector('#t tbody');
const r=[...b.rows];const n=x=>isNaN(parseFloat(x))?x:parseFloat(x);
const up=b.dataset.c==c&&b.dataset.d!='up';b.dataset.c=c;b.dataset.d=up?'up':'down';
r.sort((x,y)=>{{const p=n(x.cells[c].innerText),q=n(y.cells[c].innerText);
return (p>q?1:p<q?-1:0)*(up?1:-1)}});r.forEach(x=>b.appendChild(x))}}</script>
</body></html>
"""
