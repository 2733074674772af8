"""Data pipeline: HDF5 formats → episode index → samples → batches; statistics; device transforms."""
