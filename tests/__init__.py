"""advnorm's test suite. One intra-op thread: tiny tensors gain nothing from two, and lose a lot on a busy machine."""

import torch

torch.set_num_threads(1)
