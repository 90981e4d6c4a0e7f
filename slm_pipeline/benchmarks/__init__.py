"""The sections of `slm-pipeline bench`, one module per concern (see slm_pipeline/bench.py, the entry point):
common (machine, data), training, anonymization, inference, retrieval, end_to_end, report (markdown), runner."""
