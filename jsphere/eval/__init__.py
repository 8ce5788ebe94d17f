"""Evaluation protocols: pair verification (OpenSphere and standard), IJB-B/C, reports."""
