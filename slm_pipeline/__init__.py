"""slm-pipeline: documents, FAQs and support chats in; a small private domain chatbot out."""

__version__ = "0.1.0"
