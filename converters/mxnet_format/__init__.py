"""insightface's MXNet model files read without mxnet."""
