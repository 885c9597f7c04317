"""Report: a grade as each reader reads it. The record of one graded submission
(`records`), the terminal table, Markdown and Gradescope's JSON (`formats`), the feedback
report (`feedback`, `feedback_content`, `pictures/`), and the escapers and annotations
they share (`markdown`, `csvcells`, `annotations`)."""
