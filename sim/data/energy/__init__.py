"""Energy and area tables (TOML), loaded by ``sim.energy.load_table``."""
