"""The paper's analyses of saved runs (§3.4, §5, §5.1; Table 3; Figures 3, 4, 6, 7, 8).

One module per tool, each usable from Python and through the ``flowgan`` command line:

* :mod:`~flowgan.analysis.gmm` -- the Gaussian-mixture baseline of §3.4 (one isotropic Gaussian
  at every training point), its exact chunked log-density, the σ line search and the σ sweep of
  Figures 3 and 6, samples for Figure 7 (``flowgan baseline gmm``);
* :mod:`~flowgan.analysis.kde` -- the Parzen-window (KDE) estimate of Goodfellow et al. (2014);
* :mod:`~flowgan.analysis.ais` -- annealed importance sampling for decoder models (Neal 2001;
  Wu et al. 2017), validated against a linear-Gaussian decoder;
* :mod:`~flowgan.analysis.jacobian` -- exact singular values of ``∂G/∂z`` (§5.1, Figures 4, 8);
* :mod:`~flowgan.analysis.plots` -- the figures (matplotlib, Agg backend);
* :mod:`~flowgan.analysis.cli` -- ``flowgan baseline gmm``, ``flowgan analyze likelihoods`` (Table 3),
  ``flowgan analyze jacobian`` (Figure 4).

Nothing is imported here: ``import flowgan.analysis`` stays cheap.
"""
