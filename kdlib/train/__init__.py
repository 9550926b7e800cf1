"""Training: the loop every notebook uses (``fit``, in ``kdlib.train.loop``), data-parallel training
(``distributed``) and the SSL pretraining objectives of the zoo's tiny teachers (``pretraining``)."""

from kdlib.train.loop import PRECISIONS, History, fit

__all__ = ["PRECISIONS", "History", "fit"]
