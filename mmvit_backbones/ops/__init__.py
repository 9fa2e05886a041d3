"""Attention kernels: a plain-PyTorch reference and faster paths behind one function each."""
