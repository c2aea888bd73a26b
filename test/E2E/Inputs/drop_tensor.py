"""drop_tensor.py IN OUT NAME: copies a safetensors file without tensor NAME."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "reference"))
from moe_reference import safetensors_np  # noqa: E402

tensors = safetensors_np.load(sys.argv[1])
del tensors[sys.argv[3]]
safetensors_np.save(sys.argv[2], tensors)
