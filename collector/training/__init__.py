"""Watching collapse inside training loops: the shared core (``watch``) and one callback per
framework (``transformers``: Hugging Face Trainer and TRL; ``lightning``)."""
