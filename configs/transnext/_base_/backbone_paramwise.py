# TransNeXt backbone at lr x0.1 with no weight decay on biases, norms and the attention's own tables: the
# paramwise rules of the authors' DINO (mmdet 3.0) and Mask2Former (mmseg 1.0) configs. A config that
# inherits this sets `paramwise_cfg=dict(custom_keys=custom_keys, ...)` (extending custom_keys for its head).
# The authors' comprehensions for the stage norms and patch embeddings use range(len(depths) - 1), which
# leaves patch_embed4.* and norm4.* at lr x1.0 with weight decay; here the multiplier covers the WHOLE
# backbone (all four stages), as they intended.
backbone_decay = dict(lr_mult=0.1)
backbone_nodecay = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'attn.query_embedding': backbone_nodecay,
    'relative_pos_bias_local': backbone_nodecay,
    'cpb': backbone_nodecay,
    'temperature': backbone_nodecay,
    'attn.learnable': backbone_decay,
    'attn.q.weight': backbone_decay,
    'attn.q.bias': backbone_nodecay,
    'attn.kv.weight': backbone_decay,
    'attn.kv.bias': backbone_nodecay,
    'attn.qkv.weight': backbone_decay,
    'attn.qkv.bias': backbone_nodecay,
    'attn.sr.weight': backbone_decay,
    'attn.sr.bias': backbone_nodecay,
    'attn.norm': backbone_nodecay,
    'attn.proj.weight': backbone_decay,
    'attn.proj.bias': backbone_nodecay,
    'mlp.fc1.weight': backbone_decay,
    'mlp.fc1.bias': backbone_nodecay,
    'mlp.fc2.weight': backbone_decay,
    'mlp.fc2.bias': backbone_nodecay,
    'mlp.dwconv.dwconv.weight': backbone_decay,
    'mlp.dwconv.dwconv.bias': backbone_nodecay,
}
custom_keys.update({f'backbone.norm{s}': backbone_nodecay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.norm': backbone_nodecay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.proj.weight': backbone_decay for s in range(1, 5)})
custom_keys.update({f'backbone.patch_embed{s}.proj.bias': backbone_nodecay for s in range(1, 5)})
# block norms: up to 32 blocks per stage covers every arch (at most 23); extra keys match nothing
custom_keys.update({f'backbone.block{s}.{b}.norm': backbone_nodecay for s in range(1, 5) for b in range(32)})
