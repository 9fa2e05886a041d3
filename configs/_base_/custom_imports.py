# Makes this package's backbones visible from any mmdet/mmseg config (registered in mmengine's root MODELS).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)
