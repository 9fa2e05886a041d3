"""Facts about the authors' weight releases that both a model and its converter need."""

# GC ViT: how the global query generator output (B, C, h, w) is split into heads, per weight release.
#   'channels_last': channel c feeds head c // head_dim (the fixed code, NVlabs/GCVit c77aae0,
#       2022-08-11; every checkpoint released since, and the authors' detection code).
#   'channels_first': the NCHW buffer reshaped as (N, heads, head_dim) (the code of the 2022-07-26
#       release, whose weights were trained with this split; see NVlabs/GCVit issues #10/#11).
# Index i is the value of the model's persistent ``global_query_split_code`` buffer.
GCVIT_GLOBAL_QUERY_SPLITS = ('channels_last', 'channels_first')
