"""The paper's analyses of saved runs (§3.4, §5, §5.1; Table 3; Figures 3, 4, 6, 7, 8).

Each analysis is a function with typed settings that returns a typed result able to write its
files; ``flowgan reproduce`` calls the functions, the ``flowgan`` commands only parse and print:

* :mod:`~flowgan.analysis.baseline` -- the Gaussian-mixture baseline against a run (Figures 3, 6
  and 7): :func:`~flowgan.analysis.baseline.gmm_baseline` (``flowgan baseline gmm``);
* :mod:`~flowgan.analysis.table3` -- exact NLL against AIS and KDE, with the rankings (Table 3):
  :func:`~flowgan.analysis.table3.likelihood_table` (``flowgan analyze likelihoods``);
* :mod:`~flowgan.analysis.figure4` -- the singular values of ``∂G/∂z`` of several runs (Figures 4,
  8): :func:`~flowgan.analysis.figure4.jacobian_analysis` (``flowgan analyze jacobian``);

and the tools they are built from:

* :mod:`~flowgan.analysis.gmm` -- the mixture of §3.4 (one isotropic Gaussian at every training
  point), the σ line search and sweep; :mod:`~flowgan.analysis.mixture` -- its exact chunked
  log-density, shared with KDE;
* :mod:`~flowgan.analysis.kde` -- the Parzen-window (KDE) estimate of Goodfellow et al. (2014);
* :mod:`~flowgan.analysis.ais` -- annealed importance sampling for decoder models (Neal 2001;
  Wu et al. 2017), validated against a linear-Gaussian decoder;
* :mod:`~flowgan.analysis.jacobian` -- exact singular values of ``∂G/∂z`` (§5.1);
  :mod:`~flowgan.analysis.mlp_jacobian` -- coupling networks' Jacobians, layer by layer;
* :mod:`~flowgan.analysis.plots` -- the figures (matplotlib, Agg backend);
* :mod:`~flowgan.analysis.common` -- run labels, settings from plain dicts;
* :mod:`~flowgan.analysis.cli` -- the commands.

Nothing is imported here: ``import flowgan.analysis`` stays cheap.
"""
