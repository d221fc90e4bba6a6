"""The run report: what the model gets wrong, where it looks, and whether its confidence means
anything, as one self-contained web page (``report.html``) in the run directory.

At the end of a run the training code saves the predictions it already has and writes the
page::

    from effnet.report import fit_temperature, save_predictions, write_report

    save_predictions(run_dir, "test", paths, targets, logits, classes)
    save_predictions(run_dir, "val", paths, targets, logits, classes)  # or "train"
    temperature = fit_temperature(val_logits, val_targets)
    write_report(run_dir, model=model, temperature=temperature)

``effnet report RUN`` calls :func:`write_report` alone: predictions that were not saved are
recomputed from the run's checkpoint on the images ``data.json`` recorded.

Rooms: :mod:`~effnet.report.calibration` (ECE, reliability, temperature scaling; pure tensor
math), :mod:`~effnet.report.cam` (Grad-CAM via captum, overlays, ``explain_files``),
:mod:`~effnet.report.predictions` (the saved predictions), :mod:`~effnet.report.run` (reading
a run directory), :mod:`~effnet.report.figures`, :mod:`~effnet.report.sections` and
:mod:`~effnet.report.html` (the page), :mod:`~effnet.report.write` (``write_report``),
:mod:`~effnet.report.text` (an evaluation report as the lines ``effnet evaluate`` prints).
"""

from effnet.report.calibration import (
    DEFAULT_BINS,
    Reliability,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from effnet.report.cam import Explained, Explanation, explain_files, explain_images, grad_cam
from effnet.report.predictions import Predictions, load_predictions, save_predictions
from effnet.report.write import REPORT_FILE, write_report

__all__ = [
    "DEFAULT_BINS",
    "REPORT_FILE",
    "Explained",
    "Explanation",
    "Predictions",
    "Reliability",
    "apply_temperature",
    "expected_calibration_error",
    "explain_files",
    "explain_images",
    "fit_temperature",
    "grad_cam",
    "load_predictions",
    "reliability",
    "save_predictions",
    "write_report",
]
