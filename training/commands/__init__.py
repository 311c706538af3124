"""One module per `python -m training` verb, named after the verb (`gan-eval` -> `gan_eval.py`).

Each holds `HELP` (the verb's line in `python -m training --help`), `add_arguments(parser)` (its
options, built with `training.options.add_options` from the verb's options dataclass in its
area's light `config.py`) and `run(args) -> int` (parses them into that dataclass and hands it to
the library function that does the work, which never sees argparse). They import only the
standard library and light project modules at import time, so building the parser never loads
TensorFlow or Keras; `run` imports the heavy module when the verb is chosen.
"""
