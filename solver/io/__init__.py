"""What a run writes: the run file, checkpoints, the XDMF sidecar and the run folder.

Public API (by module):
    run_file     RUN_FILE, RUN_PRODUCTS, RunWriter, load_run, RunData, read_layout
    checkpoint   Checkpoint, write_checkpoint, read_checkpoint, find_checkpoint, ...
    xdmf         write_xdmf(h5_path)
    run_folder   prepare_run_folder(path, overwrite), resume_run_folder(path)
"""
