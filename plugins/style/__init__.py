"""Style classifier pieces loaded at run time (by the verl reward and the service): label sets, the
classifier, micro-batching, scorers."""
