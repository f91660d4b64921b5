"""Mechanisms shared by every product line: file I/O, OpenAI endpoints, LLaMA-Factory datasets,
series arguments, processes."""
