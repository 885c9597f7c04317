"""Run: execute a notebook, isolated. How cells run (`engine`: in a sandboxed process
forked per notebook, or a Jupyter kernel through papermill, `execute`, `papermillrun`,
`kernelstart`, `cellrunner`), the notebook's own process (`notebook_process`,
`notebookchild`, `forkclient`), what the run says happened (`executed`), the fork server
(`forkserver/`) and the operating system's sandbox (`sandbox/`)."""
