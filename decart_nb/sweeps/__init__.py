"""The machinery behind `decart_nb.experiments.sweep`: items and their identity, the resumable run
folder, sessions per worker thread (lanes), dispatch to a thread pool or a cluster, progress."""
