"""verl reward functions (compute_score)."""
