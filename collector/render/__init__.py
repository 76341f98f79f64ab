"""Terminal rendering (tables, progress) for the CLI; nothing outside the CLI prints."""
