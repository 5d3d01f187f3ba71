"""Conflicting bundles (Peer et al., WACV 2021 / arXiv 2011.02956) and auto-tuning by conflicting layer removal
(arXiv 2103.04331). Tutorial: ``tutorials/02_conflicting_bundles.py``.

* :mod:`.formulas`      the grid (B1), bundles, entropy (B2), acc_max (B3) as functions of arrays
* :mod:`.report`        :func:`layer_report`: bundles of every hidden representation of a network
* :mod:`.propositions`  P1–P5 (derived by us) as checks
* :mod:`.autotune`      block networks (:class:`DenseBlock`), removal rules, :func:`autotune`
* :mod:`.lesion`        the lesion study on residual MLPs
* :mod:`.settings`      :class:`BundleSettings`, :class:`AutotuneSettings`: the defaults
* :mod:`.conv`          conv VGG/ResNet nets (bundles.md §7): feature-map bundles, the authors' residual
                        instrumentation, conv auto-tune and lesion (import it as a submodule)
"""
from .formulas import (BundleDivergenceError, Bundles, bundle_stats, bundles, bundles_pairwise, grid_spacing,
                       group_rows, label_entropy, majority_share, quantize, weight_amplitude)
from .report import LayerBundles, format_report, hidden_activations, layer_report, logits_distinct
from .propositions import (PropositionCheck, check_p1_accuracy_bound, check_p2_loss_bound,
                           check_p3_gradient_cancellation, check_p4_depth_monotonicity, check_p5_dead_layer)
from .autotune import (RULES, AutotuneResult, DenseBlock, autotune, block_net, block_types, remove_all_types,
                       remove_first_type)
from .lesion import forward_lesioned, lesion_study
from .settings import AutotuneSettings, BundleSettings

__all__ = [
    "BundleDivergenceError", "Bundles", "bundle_stats", "bundles", "bundles_pairwise", "grid_spacing", "group_rows",
    "label_entropy", "majority_share", "quantize", "weight_amplitude", "LayerBundles", "format_report",
    "hidden_activations", "layer_report", "logits_distinct", "PropositionCheck", "check_p1_accuracy_bound",
    "check_p2_loss_bound", "check_p3_gradient_cancellation", "check_p4_depth_monotonicity", "check_p5_dead_layer",
    "RULES", "AutotuneResult", "DenseBlock", "autotune", "block_net", "block_types", "remove_all_types",
    "remove_first_type", "forward_lesioned", "lesion_study", "AutotuneSettings", "BundleSettings",
]
