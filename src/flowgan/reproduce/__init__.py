"""``flowgan reproduce`` and ``flowgan report``: the paper's tables, figures and claims in one command."""
