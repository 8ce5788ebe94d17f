"""jsphere: hyperspherical face recognition in JAX/Flax."""
