"""Seeded synthetic customers with a known label process.

Why synthetic with a *documented* process: the churn and engagement labels are Bernoulli
draws from probabilities that are explicit functions of the observed features, so the
best AUC any model can reach on a holdout (the Bayes limit) is computable and recorded
beside each model's own AUC. The process is described in :mod:`.generate`, which draws
it; the parts live apart so each reads on its own:

- :mod:`.schema`: the feature and table names the tables, the Feast views and the served
  models share;
- :mod:`.population`: each customer's traits, latent paths and observed features;
- :mod:`.labels`: the true churn and engagement probabilities and the label draw;
- :mod:`.generate`: one generation, drawn in a fixed order from one seeded generator;
- :mod:`.files`: a generation on disk (parquet tables, the manifest, regenerate-on-change)
  and ``python -m feature_store.datagen``.
"""
