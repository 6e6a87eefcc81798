"""The config tree; installed as the package segexp.conf (Hydra reads it as pkg://segexp.conf)."""
