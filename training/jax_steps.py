"""What the adversarial trainers' JAX steps share: Keras's JAX `fit()` hands a step the values of
every variable (trainable, non-trainable, the optimiser's, the metrics') as lists, and takes new
lists back, where the TensorFlow step assigns. These helpers find a network's values in those
lists and give `fit()` the two optimisers of a GAN as the one it carries.
"""

from __future__ import annotations

from retina_desktop.core.quiet import import_keras

keras = import_keras()


class BothOptimizers(keras.optimizers.Optimizer):
    """The generator's and the discriminator's optimisers as the one optimiser whose variables
    Keras's JAX `fit()` carries (the generator's first); the step applies each itself."""

    def __init__(self, first, second):
        super().__init__(learning_rate=0.0, name="both_optimizers")
        self._pair = lambda: (first, second)  # a function: saving does not walk it, nothing is saved twice

    @property
    def variables(self):
        first, second = self._pair()
        return first.variables + second.variables

    def build(self, variables):  # both were built by the trainer's compile
        self.built = True

    def save_own_variables(self, store):  # each optimiser saves its own
        pass

    def load_own_variables(self, store):
        pass


def places(variables, among) -> list[int]:
    """Where each of `variables` sits in the list `among` (both lists of Keras variables)."""
    index = {id(v): i for i, v in enumerate(among)}
    return [index[id(v)] for v in variables]


def take(values: list, where: list[int]) -> list:
    return [values[i] for i in where]


def put(values: list, where: list[int], new) -> list:
    """`values` with `new` at the places `where`, in place."""
    for i, value in zip(where, new):
        values[i] = value
    return values


def update_metrics(metrics, metric_values: list, results) -> tuple[dict, list]:
    """(logs, new metric values) after each metric in `metrics` (Means) took its value in `results`."""
    logs, new_values, start = {}, [], 0
    for metric, value in zip(metrics, results):
        own = metric_values[start:start + len(metric.variables)]
        start += len(metric.variables)
        own = metric.stateless_update_state(own, value)
        logs[metric.name] = metric.stateless_result(own)
        new_values += own
    return logs, new_values
