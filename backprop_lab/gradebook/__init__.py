"""Gradebook: a class. Find the submissions and grade them all (`submissions`, `batch`,
`workers`, `console`, `merge`), and the class's grades with the course's files (`grades`,
`roster`, `overrides`, `latepolicy`, `submittime`, `coursefiles`, `exports`,
`feedback_gradebook`)."""
