"""Plan: from a submission to what runs. Read and check the notebook (`notebook`), see
what the student did to the cells they were given (`edits`), build the clean room whose run
decides the points (`cleanroom`, with the course's own test cells, `course_tests`), and
the plan of calls with the cells that carry it into the notebook (`calls`)."""
