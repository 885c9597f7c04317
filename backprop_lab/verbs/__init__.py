"""Verbs: the ways in. The `autograde` command (`cli`) and its verbs (`demo`, `verify`,
`release`, `ci`, `classroom`, `gradescope`, `upload`, `bundle`, `assignments`), and the
pytest form (`plugin`, `grading/`)."""
