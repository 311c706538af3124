"""One module per `python -m training` verb, named after the verb (`gan-eval` -> `gan_eval.py`).

Each holds `HELP` (the verb's line in `python -m training --help`), `add_arguments(parser)` (its
options) and `run(args) -> int` (hands them to the library module that does the work). They
import only the standard library and light project modules at import time, so building the
parser never loads TensorFlow or Keras; `run` imports the heavy module when the verb is chosen.
"""
