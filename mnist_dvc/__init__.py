"""mnist-dvc: the shared library behind the DVC stages in stages/."""
