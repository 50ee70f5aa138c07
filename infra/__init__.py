"""Where things run: deploy targets, the model registry, bootstrap scripts, services."""
