"""The app under the `spaces` package's own ZeroGPU mode, as far as it runs without a GPU (tests/lab/test_zerogpu.py).

Run as lab.server is (`python tests/support/zerogpu_app.py --config ... --port ...`) with SPACES_ZERO_GPU=true and
SPACES_ZERO_DEVICE_API_URL naming a `support.zerogpu.FakeDeviceAPI`: spaces then patches torch (CUDA reported as
available, the models "moved" to it at load), books every @spaces.GPU call with that API under the calling
request's x-ip-token, forks its worker, pickles the arguments, results and errors across, and relays progress.
Three steps of spaces need a GPU, and only they are replaced here:

- `init` attaches the GPU the API named (CUDA_VISIBLE_DEVICES, a first CUDA tensor): nothing to attach;
- `pack` offloads the weights to disk at launch, for `move` to load onto the GPU: they stay in memory;
- `move` points each emulated CUDA tensor at its copy on the GPU: here at its original on the CPU.
"""

import spaces  # noqa: F401, I001  (first, as in app.py: it patches torch)

from spaces.zero import torch as zero_torch
from spaces.zero.torch import patching


def keep_on_cpu(callback=None) -> None:
    """In spaces' worker: every emulated CUDA tensor becomes its CPU original (spaces moves it to the GPU)."""
    for fake, original in patching.cuda_aliases.items():
        if original is not None:
            fake.data = original


zero_torch.init = lambda nvidia_uuid: None
zero_torch.pack = lambda: 0
zero_torch.move = keep_on_cpu

if __name__ == "__main__":
    from lab.server import main

    main()
