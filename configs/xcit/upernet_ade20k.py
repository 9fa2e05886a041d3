# Default XCiT UperNet: XCiT-S12/16, the authors' 160k recipe (see upernet_xcit-small-12-p16_160k_ade20k.py).
_base_ = ['./upernet_xcit-small-12-p16_160k_ade20k.py']
