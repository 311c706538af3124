"""Source shared by the tests' Keras 2 (tf_keras) subprocess scripts.

Keras 2 and Keras 3 never share a process in the tests, so the Keras 2 side is a script string;
this is the part two such scripts need: rewriting a saved file's JSON the way Keras 2.4 (the
Teachable Machine era) wrote it, without `module`/`registered_name` and with `Model` for
Functional models.
"""

REWRITE_AS_KERAS24 = r'''
def keras24_style(node):
    if isinstance(node, list):
        return [keras24_style(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: keras24_style(value) for key, value in node.items()
            if key not in ("module", "registered_name", "build_config")}
    if node.get("class_name") == "Functional":
        node["class_name"] = "Model"
    return node


def rewrite_as_keras24(path):
    with h5py.File(path, "r+") as h5:
        config = keras24_style(json.loads(h5.attrs["model_config"]))
        h5.attrs["model_config"] = json.dumps(config).encode("utf-8")
        h5.attrs["keras_version"] = b"2.4.0"
'''
