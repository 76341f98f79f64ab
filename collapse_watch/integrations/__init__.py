"""Training-loop integrations: ``collapse_watch.integrations.transformers`` (Hugging Face ``Trainer``
and TRL) and ``collapse_watch.integrations.lightning`` (Lightning). Each imports its framework only
when imported itself."""
