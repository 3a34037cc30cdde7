"""Command-line tools: ``superglue-ros <subcommand>``."""
