"""Units shared by every layer (a leaf module: it imports nothing from Atlas)."""

GIB = 2**30  # bytes in a GiB: GPU memory figures, plans and peak metrics all use it
GB = 10**9  # bytes in a GB (vendor bandwidths)
