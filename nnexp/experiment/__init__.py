"""One experiment beside the training run of :mod:`nnexp.app`: the gradient check
(:mod:`nnexp.experiment.gradcheck`). (The design's target layout gathers config, build, the run
and its artifacts here too; they move as issues touch them.)"""
