"""Code that LLaMA-Factory, verl and Ray load at run time."""
