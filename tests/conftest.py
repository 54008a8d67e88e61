"""Shared test settings: small thread counts and fixed seeds keep tests fast and repeatable on 2 cores."""

import torch

torch.set_num_threads(1)
