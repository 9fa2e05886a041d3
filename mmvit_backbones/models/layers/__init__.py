"""Pieces that two or more backbone families share. Import from the submodules directly."""
