"""Human grading round trip: export a CSV sheet of answers, parse it back once filled (1-5 helpfulness and
accuracy), and fold the per-model means into the metrics.

This module never imports dagster.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from .artifacts import atomic_write_text
from .metrics import _mean, _r

__all__ = ["GRADING_COLUMNS", "GradingSheetError", "write_grading_sheet", "load_grades", "fold_grades"]

GRADING_COLUMNS = ["id", "model", "question", "answer", "reference", "helpfulness", "accuracy"]
GRADE_COLUMNS = ("helpfulness", "accuracy")


class GradingSheetError(ValueError):
    """A filled grading sheet is invalid; the message names the file and each bad row."""


def write_grading_sheet(rows: Iterable[dict], path: Path) -> Path:
    """CSV for humans: id, model, question, answer, reference, helpfulness, accuracy (last two empty, 1-5)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=GRADING_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**{c: r.get(c, "") for c in GRADING_COLUMNS}, "helpfulness": r.get("helpfulness", ""),
                    "accuracy": r.get("accuracy", "")})
    return atomic_write_text(Path(path), buf.getvalue())


def _parse_grade(value: str | None) -> int | None | str:
    """int 1-5, None for blank, or an error string."""
    v = (value or "").strip()
    if not v:
        return None
    try:
        f = float(v)
    except ValueError:
        return f"must be a whole number from 1 to 5, got {v!r}"
    if not f.is_integer() or not 1 <= f <= 5:
        return f"must be a whole number from 1 to 5, got {v!r}"
    return int(f)


def load_grades(csv_path: Path | str) -> dict[str, dict]:
    """Parse a filled grading sheet.

    Returns {model: {"n_rows", "n_graded", "helpfulness_mean", "accuracy_mean", "items": {id: {"helpfulness",
    "accuracy"}}}}. Blank cells are allowed (not graded yet) and left out of the means; any other value must be a
    whole number 1-5. All problems are reported at once in a GradingSheetError naming the file, the data row
    (1 = first row under the header) and its line in the file.
    """
    path = Path(csv_path)
    if not path.exists():
        raise GradingSheetError(f"Grading sheet {path} does not exist")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in ("id", "model", *GRADE_COLUMNS) if c not in header]
        if missing:
            raise GradingSheetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(GRADING_COLUMNS)}")
        reader.fieldnames = header
        errors: list[str] = []
        out: dict[str, dict] = {}
        line_start = reader.line_num + 1
        for row_no, row in enumerate(reader, 1):
            where = f"{path}: row {row_no} (line {line_start})"
            line_start = reader.line_num + 1
            rid, model = (row.get("id") or "").strip(), (row.get("model") or "").strip()
            if not rid or not model:
                errors.append(f"{where}: 'id' and 'model' must not be empty")
                continue
            grades = {}
            for col in GRADE_COLUMNS:
                g = _parse_grade(row.get(col))
                if isinstance(g, str):
                    errors.append(f"{where} (id={rid}, model={model}): column '{col}' {g}")
                grades[col] = g if not isinstance(g, str) else None
            entry = out.setdefault(model, {"items": {}})
            if rid in entry["items"]:
                errors.append(f"{where}: duplicate row for id={rid}, model={model}")
            entry["items"][rid] = grades
    if errors:
        shown = errors[:20] + ([f"... and {len(errors) - 20} more"] if len(errors) > 20 else [])
        raise GradingSheetError("Invalid grading sheet:\n  " + "\n  ".join(shown))
    for entry in out.values():
        items = entry["items"].values()
        entry["n_rows"] = len(entry["items"])
        entry["n_graded"] = sum(1 for g in items if any(g[c] is not None for c in GRADE_COLUMNS))
        for col in GRADE_COLUMNS:
            entry[f"{col}_mean"] = _r(_mean([g[col] for g in items if g[col] is not None]), 3)
    return out


def fold_grades(metrics_by_model: dict[str, dict], grades: dict[str, dict]) -> dict[str, dict]:
    """Add human_helpfulness / human_accuracy (means, 1-5) and human_n_graded to each graded model's metrics."""
    for model, g in grades.items():
        if model in metrics_by_model:
            metrics_by_model[model]["human_helpfulness"] = g["helpfulness_mean"]
            metrics_by_model[model]["human_accuracy"] = g["accuracy_mean"]
            metrics_by_model[model]["human_n_graded"] = g["n_graded"]
    return metrics_by_model
