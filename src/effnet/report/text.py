"""An evaluation report (``eval_report.json``, what ``evaluate_checkpoint`` returns) as the
lines ``effnet evaluate`` prints: accuracy, per-class precision and recall, calibration."""

from __future__ import annotations

from typing import Any

__all__ = ["evaluation_lines"]


def evaluation_lines(report: dict[str, Any]) -> list[str]:
    """The headline numbers, one line per class, then the calibration before and after the
    temperature stored with the checkpoint."""
    lines = [
        f"{report['data']} ({report['split']}, {report['num_samples']} images): accuracy "
        f"{report['accuracy']:.4f}, balanced accuracy {report['balanced_accuracy']:.4f}, "
        f"macro-F1 {report['macro_f1']:.4f}"
    ]
    lines += [
        f"  {name:>12}: precision {row['precision']:.3f}  recall {row['recall']:.3f}  "
        f"support {row['support']}"
        for name, row in report["per_class"].items()
    ]
    cal = report["calibration"]
    stored = cal["temperature"]
    lines.append(
        f"calibration: ECE {cal['ece']:.4f}"
        + (
            f", {cal['ece_calibrated']:.4f} with the temperature {stored:.3f} stored with it"
            if stored is not None
            else " (no temperature stored with the checkpoint)"
        )
    )
    return lines
