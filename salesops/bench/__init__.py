"""The benchmark suite: the system's figures against raw baselines measured in the same run (`make bench`)."""
