# Makes this package's backbones visible from any mmdet/mmseg config (registered in mmengine's root MODELS),
# and resumes runs exactly: RNGStateHook (mmvit_backbones/engine) saves every rank's random-number states in
# each checkpoint and restores them on --resume (docs/reliability.md); importing mmvit_backbones registers it.
# A config that sets its own custom_hooks list replaces this one (tools/train.py adds the hook back).
custom_imports = dict(imports=['mmvit_backbones'], allow_failed_imports=False)
custom_hooks = [dict(type='RNGStateHook')]
