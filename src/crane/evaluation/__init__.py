"""Masked evaluation: bits per byte per language under neuron masks, and its matrices."""

from __future__ import annotations

from crane.evaluation.bpb import BitsPerByte, MaskingMatrix, bits_per_byte, masking_matrix
from crane.evaluation.choice import ChoiceMatrix, ChoiceScores, choice_matrix, choice_scores

__all__ = ["BitsPerByte", "MaskingMatrix", "bits_per_byte", "masking_matrix"]
__all__ += ["ChoiceMatrix", "ChoiceScores", "choice_matrix", "choice_scores"]
