"""MTCNN's P-Net/R-Net/O-Net weights."""
