"""Released models in and out of jsphere, grouped by what each part depends on.

The commands, one module each (argument parsing and calls into the packages below):
``import_torch`` (``.pth``/``.pt``/``.ckpt``/``.safetensors``), ``import_mxnet`` (insightface's MXNet ``.params``),
``import_onnx``, ``import_mtcnn`` (the face detector's weights), ``export_torch``, ``export_onnx`` and ``check``
(a ``.pth`` run in PyTorch and in jsphere side by side); each is ``python -m converters.<name>``.

* ``core``: what every format shares. Every importer brings its file to a torch-named state_dict; ``infer`` and
  ``infer_ir`` tell the backbone and its shape hyper-parameters from it (``found``: the result and the naming
  rules, ``keys``: the state_dict helpers), ``mapping`` and ``layer_order`` tie PyTorch names to jsphere's module
  tree, ``folding`` rewrites other frameworks' conventions exactly (BatchNorm eps, input scaling), ``conventions``
  records the input a model was trained on, ``layouts`` and ``renames`` recognise the toolkits' checkpoint
  layouts; ``backbone_import`` resolves, converts and saves, ``arguments`` holds the importers' shared options,
  ``torch_state`` fills the PyTorch reference model for the exporters, ``agreement`` compares two frameworks.
* ``pth_format``: PyTorch files read without torch (``torch_pickle``, ``pth_file``, ``safetensors_file``), the
  ``.pth`` import and export (``pth_import``, ``pth_export``) and the cross-check (``crosscheck``).
* ``mxnet_format``: MXNet files read without mxnet (``model_files``), insightface's networks as state_dicts
  (``networks``), the import (``mxnet_import``).
* ``onnx_format``: ONNX files read as hostile input (``model_file``, ``graph_reader``), the backbone a graph
  describes (``architecture``), the import and export (``onnx_import``, ``onnx_export``). Needs ``jsphere[onnx]``.
* ``mtcnn_weights``: MTCNN's weights (``npy_objects``, a safe reader of pickled ``.npy``; ``mtcnn_import``).
* ``torch_reference``: PyTorch definitions of every backbone, head, loss and training loop, and MTCNN, that the
  exporters, ``check``, the tests and the benchmarks compare against. Needs torch.

torch is needed only by ``torch_reference`` and what runs it (``check``, the exports); the ``.pth`` readers never
import it.
"""
