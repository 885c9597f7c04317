"""Judge: from what the notebook's kernel sent back to points. Read the results
(`readback`), compare every value with the reference (`compare`), recognise known
mistakes (`observation`, `detectors`, `mistakes`), score (`score`), and the sentences a
run's facts become (`notes`), the speed ladder (`speed`), the 0-point notes on the answers'
code (`shortcuts`, `answer_scan`)."""
