"""Library log lines that say nothing actionable to a user of this pipeline, dropped at the source.

Installed once when `slm_pipeline` is imported (logging filters only; nothing else is imported).
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["DropMessages", "install"]


class DropMessages(logging.Filter):
    """Drops records whose message contains any of `needles`."""

    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in str(record.msg) for n in self.needles)


# logger name -> message fragments
_DROPPED = {
    # bitsandbytes on AVX512-BF16 CPUs tries an optional kernel package that would fetch code from the HF hub;
    # we never install it (no network at run time) and its own fallback is what runs.
    "bitsandbytes.backends.cpu.ops": ("Failed to load CPU gemm_4bit_forward from kernels-community",),
}
# (category, message regex): warnings about library internals, raised by one library calling another.
_IGNORED_WARNINGS = [
    # peft calls transformers' renamed property on every save (peft <= 0.18 with transformers 5)
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
]
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    for name, needles in _DROPPED.items():
        logging.getLogger(name).addFilter(DropMessages(*needles))
    for category, message in _IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    _installed = True
