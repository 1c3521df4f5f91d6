"""decart_nb's latency benchmark: `bench/run [--short]` (see bench/README.md)."""
