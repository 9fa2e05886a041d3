"""Analysis tools (FLOPs, receptive fields, attention maps); import the submodule you need."""
