"""Development tooling of the checkout, run by ``make`` (not shipped in the wheel; ``stmltm_nb`` never imports it).

- :mod:`tools.prose`: notebook and README text rendered from the data (``{{ placeholders }}``)
- :mod:`tools.readme`: the README's rendered blocks (templates in ``tools/readme_blocks.md``)
- :mod:`tools.notebooks`: the notebook build, ``python -m tools.notebooks`` (``make notebooks``, ``make readme``)
"""
