"""What every importer and exporter shares, whatever the file format.

Every importer brings its file to a state_dict under PyTorch's reference names; from there:

* ``infer`` (IResNet, MobileFaceNet, SFNet) and ``infer_ir`` (the IR family, foamliu's MobileFaceNet) tell which
  backbone the state_dict holds, with every shape hyper-parameter read from the tensors; ``found`` is their result
  (``Found``) and the naming rules the ONNX detection shares; ``keys`` reads key counts and shapes;
* ``mapping`` is the table between PyTorch names and jsphere's module tree, ``layer_order`` the weighted layers in
  forward-call order (for formats without names);
* ``folding`` rewrites what another framework computes differently (BatchNorm eps, a preceding bias, the input
  scale) exactly into PyTorch-convention tensors;
* ``conventions`` decides and records the input a model was trained on (``jsphere.input_convention.InputConvention``);
* ``layouts`` recognises the checkpoint layouts of OpenSphere v1/v2, insightface, AdaFace and wrapped files, with
  ``renames`` for TreB1eN's MobileFaceNet names;
* ``backbone_import`` resolves the backbone, converts its tensors and writes the checkpoint; ``arguments`` holds
  the options and report the importer commands share;
* ``torch_state`` fills the PyTorch reference model with a checkpoint (both exporters; needs torch), and
  ``agreement`` measures how closely two frameworks' embeddings agree.
"""
