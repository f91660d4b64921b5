"""Speaker-recognition environment: series data, toolset, prompts, protocol parsing, tool server."""
