"""advnorm: adversarial intensity normalization for multi-domain 3-D MRI segmentation.

Implements Delisle et al., "Adversarial normalization for multi domain image
segmentation" (ISBI 2020): a generator G normalizes intensities, a segmenter S
segments G's output and a (K+1)-class discriminator D keeps G's output realistic.
"""

__version__ = "0.1.0"
