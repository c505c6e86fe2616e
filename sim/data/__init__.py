"""Data files of the simulator (energy tables)."""
