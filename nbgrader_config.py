"""nbgrader configuration: `nbgrader generate_assignment NAME` turns solutions/NAME/ into
assignments/NAME/ (stubs in place of solutions, hidden tests removed, checksums added)."""

c = get_config()  # noqa: F821 (nbgrader provides get_config when it loads this file)

c.CourseDirectory.course_id = "backprop-lab"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
# Where students' notebooks go for `nbgrader autograde`: submitted/<student>/<assignment>/.
c.CourseDirectory.submitted_directory = "submitted"

# The stub students see in place of each solution region.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# The slowest cell (the three-loop matmul under %timeit) takes well under a second on the
# bundled data; MNIST through data_path is 12x larger. A hung cell fails after this long.
c.Execute.timeout = 120

# One verdict with `autograde`: nbgrader's kernel skips a left-over breakpoint(),
# pdb.set_trace() or ipdb.set_trace() (the last one fails to import where ipdb is not
# installed) exactly as the autograder's kernel does, instead of failing the exercise.
c.Execute.extra_arguments = [
    "--IPKernelApp.exec_lines=__import__('backprop_lab.kernel').kernel.neutralise_debuggers()",
]
