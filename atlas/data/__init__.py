"""Data pipeline: HDF5 formats → episode index → samples → batches; statistics; device transforms."""

# atlas.config's package import pulls in the schema, which imports atlas.data.config; importing it
# first here keeps `from atlas.data.<module> import ...` working as the first import of a program.
import atlas.config  # noqa: F401
