"""Checks the qquant.sensitivity attributes of an IR file (stdin): every
cost finite and >= 0, stored bits as the scheme says, and per layer the
loss falls with the bits (i8 < i4 < i2: each finer grid is closer to the
float weight), and the 2:4-pruned i4 candidate loses more than the dense
one of the same groups. Prints one line per op and PASS."""
import re
import sys

text = sys.stdin.read()
ops = re.findall(r"(qwen\.(?:linear|logits|embedding)) [^\n]*?qquant\.sensitivity = \[([^\]]*)\]", text)
assert ops, "no qquant.sensitivity"
cost = re.compile(r"#qquant\.cost<scheme = <([ui])(\d), symmetric, (channel|group = (\d+))>, "
                  r"loss = ([-+0-9.eE]+), bits = ([-+0-9.eE]+)>")
cb = re.compile(r"#qquant\.cost<scheme = <codebook 4, channel>, "
                r"loss = ([-+0-9.eE]+), bits = ([-+0-9.eE]+)>")
sp = re.compile(r"#qquant\.cost<scheme = <i4, symmetric, group = (\d+), sparsity = 2:4>, "
                r"loss = ([-+0-9.eE]+), bits = ([-+0-9.eE]+)>")
for kind, body in ops:
    cs = cost.findall(body)
    assert len(cs) == 5, body
    cbs, sps = cb.findall(body), sp.findall(body)
    assert len(cbs) == 1 and len(sps) == 1, body
    loss = {}
    for sign, bits, gran, group, l, b in cs:
        l, b = float(l), float(b)
        assert l >= 0 and l < 1e3, l
        key = f"{sign}{bits}-" + (f"g{group}" if group else "channel")
        loss[key] = l
        # Codes + one f32 scale per group / row (64 or 128 columns).
        if group:
            assert abs(b - (int(bits) + 32 / int(group))) < 1e-9, (key, b)
        else:
            assert b in (int(bits) + 0.5, int(bits) + 0.25), (key, b)
    assert loss["i8-channel"] < loss["i4-g32"] < loss["i2-g64"], loss
    # Codebook: 4-bit indices + 16 f32 centroids a row (64 or 128 columns).
    l, b = map(float, cbs[0])
    assert l >= 0 and b in (4 + 512 / 64, 4 + 512 / 128), (kind, b)
    # 2:4: half the codes + a 2-bit position each + one f32 scale a group.
    g, l, b = int(sps[0][0]), float(sps[0][1]), float(sps[0][2])
    assert abs(b - (2 + 1 + 32 / g)) < 1e-9, (kind, b)
    assert l > loss[f"i4-g{g}"], (kind, l, loss)
    print(kind, len(cs) + 2)
print("PASS")
