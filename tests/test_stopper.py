"""The budget's stopper, driven with scripted results and clocks: when a budgeted search
ends early, and why."""


from hyperfcn.config import ModelConfig

KEYS = ModelConfig.keys()


def test_the_search_ends_early_for_the_leading_trials_training_on(monkeypatch, tmp_path):
    """Scripted: two trials of 10 epochs within 1,000 s of search. The search ends once
    three quarters are left, judged on the leading trial's epoch time (a slow leader, whose training
    on would not fit, keeps it going), and it ends between epochs: each trial stops at its
    next result (its checkpoint is saved first, as for a scheduler's stop), the searcher
    suggests no more, and nothing is stopped all at once."""
    import pickle

    from ray.tune.search import Searcher

    from hyperfcn.tuning import search

    class Inner(Searcher):
        def suggest(self, trial_id):
            return {"x": 1}

    clock = [1000.0]
    monkeypatch.setattr(search.time, "time", lambda: clock[0])
    # 16 trials at once: the 250 s it may search hold enough trainings of the slow one
    stop = search.LongerFinalStopper("val_loss", search_s=1000.0, max_epochs=10, slots=16)
    searcher = stop.wrap(Inner(metric="val_loss", mode="min"))
    for epoch in (1, 2):
        assert not stop("fast", {"val_loss": 1.0 / epoch, "epoch_seconds": 10.0})
        assert not stop("slow", {"val_loss": 0.9 / epoch, "epoch_seconds": 110.0})
    clock[0] += 600.0  # 400 s left: less than 3/4, but the leader's epochs take 110 s
    assert not stop("slow", {"val_loss": 0.4, "epoch_seconds": 110.0})
    assert searcher.suggest("t3") == {"x": 1}
    assert stop("fast", {"val_loss": 0.1, "epoch_seconds": 10.0})  # the lead changes
    assert searcher.suggest("t4") == Searcher.FINISHED
    assert stop("slow", {"val_loss": 0.3, "epoch_seconds": 110.0})  # its next epoch
    assert not stop.stop_all()
    # Ray saves the search with its wrappers (which must say their state)
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    SearchGenerator(ConcurrencyLimiter(searcher, 2)).save_to_dir(str(tmp_path), "s")
    # a two-stage leader is retrained from the start: 400 s of its 30 s epochs are too few
    backbone = {"backbone": "mobilenetv2", "fine_tune": "two_stage"}
    for config, ends in ((backbone, False), ({"backbone": "none"}, True)):
        clock[0] = 1000.0
        other = search.LongerFinalStopper("val_loss", search_s=1000.0, max_epochs=10)
        clock[0] += 600.0
        assert other("a", {"val_loss": 0.1, "epoch_seconds": 30.0, "config": config}) is ends
    # resumed: its clock and its decision start afresh
    again = pickle.loads(pickle.dumps(stop))
    assert not again.ended and not again("fast", {"val_loss": 0.1, "epoch_seconds": 10.0,
                                                 "time_total_s": 10.0})


def test_a_search_too_short_for_its_leader_ends_at_its_first_epoch(monkeypatch):
    """Scripted: one trial at a time, 1,800 s of search, a leader whose first epoch (which
    also compiles) took 70 s: the 450 s it may search (a quarter) hold fewer than 3 of its
    10-epoch trainings, so the search ends at that first epoch. A leader whose first epoch
    took 14 s searches on, and its faster later epochs do not change that."""
    import pickle

    from hyperfcn import progress
    from hyperfcn.tuning import search

    clock = [0.0]
    monkeypatch.setattr(search.time, "time", lambda: clock[0])
    said: list[str] = []
    view = progress.LineView(progress.Board("val_loss", "min", max_epochs=10), said.append)
    monkeypatch.setattr(search.LIVE, "view", view)
    for first_s, ends in ((70.0, True), (14.0, False)):
        clock[0] = 1000.0
        stop = search.LongerFinalStopper("val_loss", search_s=1800.0, max_epochs=10, slots=1)
        clock[0] += first_s + 30.0
        assert stop("a", {"val_loss": 1.0, "epoch_seconds": first_s}) is ends
        clock[0] += 10.0
        assert stop("a", {"val_loss": 0.9, "epoch_seconds": 10.0}) is ends  # it stays
    # said once, when it ended, with why
    assert len(said) == 1 and said[0].endswith(
        "the search ends, 1700 s before its budget: the 450 s it may search (25% of its "
        "1800 s) hold fewer than 3 trainings of trial a (10 epochs of ~70 s), too few to compare "
        "configurations; the leading trial a trains on for the rest once the running trials "
        "finish their epoch"), said
    # a run saved before `slots` existed resumes as one trial at a time
    old = pickle.loads(pickle.dumps(stop))
    del old.__dict__["slots"]
    again = pickle.loads(pickle.dumps(old))
    assert again.slots == 1


def test_a_recipe_fitted_to_the_search_end_ends_the_search_and_runs_on(monkeypatch):
    """The recipe's first report says it fitted itself to the search's end (the budget is
    too short to search, trial.py): the search ends there, every other trial stops at its
    next result, the searcher suggests no more, and the recipe runs to its planned end,
    past --max-epochs if that is what fits."""
    from ray.tune.search import Searcher

    from hyperfcn import progress
    from hyperfcn.tuning import search

    class Inner(Searcher):
        def suggest(self, trial_id):
            return {"x": 1}

    monkeypatch.setattr(search.time, "time", lambda: 1000.0)
    said: list[str] = []
    view = progress.LineView(progress.Board("val_loss", "min", max_epochs=10), said.append)
    monkeypatch.setattr(search.LIVE, "view", view)
    stop = search.LongerFinalStopper("val_loss", search_s=5000.0, max_epochs=10, slots=2)
    searcher = stop.wrap(Inner(metric="val_loss", mode="min"))
    assert not stop("other", {"val_loss": 0.5, "epoch_seconds": 20.0})
    assert not stop("recipe", {"val_loss": 0.9, "epoch_seconds": 45.0, "planned_epochs": 90})
    assert searcher.suggest("t3") == Searcher.FINISHED
    assert stop("other", {"val_loss": 0.4, "epoch_seconds": 20.0})
    for epoch in range(2, 12):
        assert not stop("recipe", {"val_loss": 0.3, "epoch_seconds": 40.0, "epoch": epoch,
                                   "planned_epochs": 90})
    assert len(said) == 1 and "trial recipe (the recipe) trains for the ~90 epochs that " \
        "fit, its learning rate decaying to 0 at the search's end" in said[0], said
    # ASHA stops it at its planned end, not at max_t
    from hyperfcn.tuning.scheduler import RungScheduler

    asha = RungScheduler("val_loss", "min", max_t=10, seeded=[{"x": 1}])
    trial = type("T", (), {"trial_id": "recipe", "config": {"x": 1}})()
    for epoch, action in ((10, "CONTINUE"), (11, "CONTINUE"), (90, "STOP")):
        assert asha.on_trial_result(None, trial, {"epoch": epoch, "val_loss": 0.3,
                                                  "planned_epochs": 90}) == action

