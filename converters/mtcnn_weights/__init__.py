"""MTCNN's P-Net/R-Net/O-Net weights for ``jsphere.detect``: OpenSphere's pickled ``.npy`` files read without
unpickling anything but arrays (``npy_objects``), facenet-pytorch's ``.pt`` through ``converters.pth_format``, and
both converted to the detector's checkpoint (``mtcnn_import``)."""
