"""slm-pipeline: documents, FAQs and support chats in; a small private domain chatbot out."""

__version__ = "0.1.0"

from .core.log_filters import install as _install_log_filters

_install_log_filters()
