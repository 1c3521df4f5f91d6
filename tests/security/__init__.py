"""Attack tests: one file per surface; each attack fails without its fix (docs/security.md)."""
