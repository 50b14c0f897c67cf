"""The dataplane's planes: what each group of endpoints does, one class per concern."""
