"""The collection's machinery (not needed to learn a method; read it to run or extend the course).

- ``runner``: runs notebooks headless (``python -m kdlib.course.runner run``), knobs injected, reference numerics,
  run times, executed copies; the working copy for ``make lab``.
- ``results``: the results record each notebook writes (models, claims, parameters) and ``SUMMARY.md``.
- ``report``: every results record side by side, and the generated sections of README.md and docs/
  (``python -m kdlib.course.report docs``).
- ``variants``: a notebook run again with other knobs (the solutions' answers), and the committed answers.
- ``book``: the course book (``python -m kdlib.course.book build``).
- ``screenshots``: executed notebooks drawn in headless Chromium, and checks of their tables.
- ``throughput``: what a run at the papers' scale would cost (``python -m kdlib.course.throughput``).
"""
