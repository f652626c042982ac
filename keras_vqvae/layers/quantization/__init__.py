"""Vector quantisers, shared by every modality (any `(..., D)` input)."""
