"""Microstructure characterization and reconstruction: descriptors, losses, optimisers, DMCR."""
