"""Built-in HDF5 formats; importing a module registers it with `atlas.data.registry.register_format`."""
