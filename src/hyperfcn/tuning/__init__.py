"""The Ray layer: the only place `ray` is imported. One round of the search on Ray Tune
(:mod:`.search`), the scheduler and the searchers on Ray's public hooks, starting Ray and
the driver's worker tasks (:mod:`.session`), MLflow and W&B through Ray's callbacks
(:mod:`.trackers`), and the one reach past Ray's public API (:mod:`.compat`). The trial, the
data and the model never import it."""
