"""``netfast bench`` without a sub-command: every benchmark in one run, one report with plots.

- :mod:`~netfast.bench.report.run`: the stages, each a ``netfast bench NAME`` child process, and
  the run's header (command, commit, machine, data files with checksums);
- :mod:`~netfast.bench.report.sections`: one section per claim of the paper, from the run's JSON;
- :mod:`~netfast.bench.report.plots`: the PNG plots, from the same JSON;
- :mod:`~netfast.bench.report.render`: REPORT.md, a pure function of ``run.json``;
- :mod:`~netfast.bench.report.readme`: the README's measured blocks, from the committed report.
"""
